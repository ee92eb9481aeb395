"""Real clients against a real `strom broker`: confluent-kafka (librdkafka), kafka-python and
kcat each produce and consume 100,000 records with keys and headers under every compression
codec, across the acks levels, and get them back byte-identical and in order per partition;
records with the same key land in the same partition."""
import collections
import subprocess
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

RECORDS = 100_000
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
ACKS = ["0", "1", "all"]
PARTITIONS = 4


def records(tag):
    """The records to send: (key, value, headers), deterministic from the tag."""
    for i in range(RECORDS):
        key = f"key-{i % 997}".encode()
        value = f"{tag}-{i}-".encode() + bytes((i * 31 + j) % 256 for j in range(i % 40))
        yield key, value, [("seq", str(i).encode()), ("tag", tag.encode())]


def create_topic(bootstrap, name, partitions=PARTITIONS):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)


def consume_all(bootstrap, topic, expected, partitions=PARTITIONS):
    """Reads every partition from the start with confluent-kafka; returns per-partition lists."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = collections.defaultdict(list)
    eof = set()
    n = 0
    idle = 0
    while n < expected or len(eof) < partitions:
        m = c.poll(1.0)
        if m is None:
            idle += 1
            assert idle < 60, f"stalled at {n}/{expected} records"
            continue
        idle = 0
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                eof.add(m.partition())
                if n >= expected:
                    continue
                continue
            raise AssertionError(m.error())
        eof.discard(m.partition())
        got[m.partition()].append((m.offset(), m.key(), m.value(), m.headers() or []))
        n += 1
    c.close()
    return got


def check(got, tag, acks_zero_ok=False):
    """Every record came back once, byte-identical, in send order per partition; one key,
    one partition."""
    sent = {int(h[0][1]): (k, v, h) for k, v, h in records(tag)}
    seen = set()
    key_partition = {}
    for p, recs in got.items():
        last_seq = -1
        last_offset = -1
        for offset, key, value, headers in recs:
            assert offset > last_offset
            last_offset = offset
            seq = int(dict(headers)["seq"])
            assert seq not in seen, f"record {seq} twice"
            seen.add(seq)
            k, v, h = sent[seq]
            assert (key, value) == (k, v), f"record {seq} differs"
            assert [(a, bytes(b)) for a, b in headers] == h
            assert key_partition.setdefault(key, p) == p, f"key {key} in two partitions"
            assert seq > last_seq, f"partition {p}: {seq} after {last_seq}"
            last_seq = seq
    assert len(seen) == RECORDS, f"{len(seen)} of {RECORDS} records"


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_round_trip(broker, codec):
    topic = f"ck-{codec}"
    create_topic(broker.bootstrap, topic)
    # Three producers, one per acks level, each sending a third of the records in order.
    producers = {a: Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "acks": a,
                              "linger.ms": 5, "enable.idempotence": a == "all"}) for a in ACKS}
    for i, (k, v, h) in enumerate(records(topic)):
        # One producer per key, so per-key order holds.
        producers[ACKS[hash(k) % 3]].produce(topic, key=k, value=v, headers=h)
        if i % 10_000 == 0:
            for p in producers.values():
                p.poll(0)
    for p in producers.values():
        assert p.flush(60) == 0
    got = consume_all(broker.bootstrap, topic, RECORDS)
    check_per_key_order(got, topic)


def check_per_key_order(got, tag):
    """Like `check`, but with several producers order is only defined per key."""
    sent = {int(h[0][1]): (k, v, h) for k, v, h in records(tag)}
    seen = set()
    key_partition = {}
    last_per_key = {}
    for p, recs in got.items():
        for offset, key, value, headers in recs:
            seq = int(dict(headers)["seq"])
            assert seq not in seen, f"record {seq} twice"
            seen.add(seq)
            assert (key, value) == sent[seq][:2], f"record {seq} differs"
            assert [(a, bytes(b)) for a, b in headers] == sent[seq][2]
            assert key_partition.setdefault(key, p) == p, f"key {key} in two partitions"
            assert seq > last_per_key.get(key, -1), f"key {key}: {seq} out of order"
            last_per_key[key] = seq
    assert len(seen) == RECORDS, f"{len(seen)} of {RECORDS} records"


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_round_trip(broker, codec):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    topic = f"kp-{codec}"
    create_topic(broker.bootstrap, topic)
    producers = {a: KafkaProducer(bootstrap_servers=broker.bootstrap, acks=(a if a == "all" else int(a)),
                                  compression_type=None if codec == "none" else codec, linger_ms=5,
                                  batch_size=64 * 1024) for a in ACKS}
    for k, v, h in records(topic):
        producers[ACKS[hash(k) % 3]].send(topic, key=k, value=v, headers=h)
    for p in producers.values():
        p.flush(60)
        p.close()
    got = consume_all(broker.bootstrap, topic, RECORDS)
    check_per_key_order(got, topic)
    # kafka-python's consumer reads the same records back.
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, consumer_timeout_ms=10_000, auto_offset_reset="earliest",
                      enable_auto_commit=False)
    c.assign([KTP(topic, p) for p in range(PARTITIONS)])
    c.seek_to_beginning()
    back = collections.defaultdict(list)
    for m in c:
        back[m.partition].append((m.offset, m.key, m.value, [(a, bytes(b)) for a, b in m.headers]))
        if sum(map(len, back.values())) == RECORDS:
            break
    c.close()
    assert {p: [r[:3] for r in rs] for p, rs in back.items()} == {p: [r[:3] for r in rs] for p, rs in got.items()}


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_round_trip(broker, codec, tmp_path):
    topic = f"kc-{codec}"
    create_topic(broker.bootstrap, topic, partitions=1)
    lines = [f"key-{i % 997}\tvalue-{codec}-{i}" for i in range(RECORDS)]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    third = RECORDS // 3
    chunks = [lines[:third], lines[third:2 * third], lines[2 * third:]]
    for acks, chunk in zip(ACKS, chunks):
        f = tmp_path / f"in-{acks}.txt"
        f.write_text("\n".join(chunk) + "\n")
        acks_value = "-1" if acks == "all" else acks
        subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-K", "\t", "-z", codec,
                        "-H", "source=kcat", "-X", f"acks={acks_value}", "-l", str(f)], check=True, timeout=120)
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e",
                          "-f", "%k\t%s\t%h\n"], check=True, capture_output=True, text=True, timeout=120).stdout
    got = out.splitlines()
    assert len(got) == RECORDS
    assert [g.rsplit("\t", 1)[0] for g in got] == lines, "byte-identical and in order"
    assert all(g.endswith("\tsource=kcat") for g in got)
