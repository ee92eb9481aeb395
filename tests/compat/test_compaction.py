"""Log compaction seen by a real client (confluent-kafka/librdkafka): a compacted topic with
tiny segments is cleaned in the background; a consumer reading it from the start gets the
latest value of every key at the offset it was produced at, and keys deleted by a tombstone
disappear once delete.retention.ms (0 here) has passed and the cleaner ran again."""
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import StromBroker


@pytest.fixture(scope="module")
def cleaning_broker():
    b = StromBroker({"log.cleaner.backoff.ms": "100"}).start()
    yield b
    b.cleanup()


def read_all(bootstrap, topic):
    """(offset, key, value) of every record from offset 0 to the high watermark."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4()}",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, 0)])
        out = []
        deadline = time.time() + 20
        while time.time() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    if not out or out[-1][0] >= high - 1 or m.offset() >= high:
                        break
                    continue
                raise AssertionError(m.error())
            out.append((m.offset(), m.key(), m.value()))
        return out, high
    finally:
        c.close()


def produce(p, topic, pairs, offsets):
    def report(err, msg):
        assert err is None, err
        offsets[(msg.key(), msg.value())] = msg.offset()
    for k, v in pairs:
        p.produce(topic, key=k, value=v, partition=0, on_delivery=report)
    p.flush(30)


def test_compacted_topic_keeps_latest_values_at_their_offsets(cleaning_broker):
    bs = cleaning_broker.bootstrap
    topic = f"compacted-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config={
        "cleanup.policy": "compact",
        "segment.bytes": "2048",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "0",
    })])[topic].result(30)
    p = Producer({"bootstrap.servers": bs, "linger.ms": 0, "compression.type": "lz4"})
    offsets = {}
    keys = [f"k{i}".encode() for i in range(10)]
    for rnd in range(6):
        produce(p, topic, [(k, f"{k.decode()}-v{rnd}".encode()) for k in keys], offsets)
        time.sleep(0.15)
    # Delete k8 and k9.
    produce(p, topic, [(b"k8", None), (b"k9", None)], offsets)
    time.sleep(0.15)
    produced_end = max(offsets.values()) + 1

    expected = {k: f"{k.decode()}-v5".encode() for k in keys[:8]}
    deadline = time.time() + 60
    filler = 0
    while True:
        # Fresh appends roll the segments holding the tombstones (segment.ms) and keep the
        # log dirty, so the cleaner runs again after the tombstones' horizon.
        produce(p, topic, [(b"filler", str(filler).encode())], offsets)
        filler += 1
        got, high = read_all(bs, topic)
        assert high == max(offsets.values()) + 1, "offsets never move"
        latest = {}
        for off, k, v in got:
            assert offsets.get((k, v)) == off, f"{k}={v} read at {off}, produced elsewhere"
            latest[k] = v
        compacted = len([r for r in got if r[0] < produced_end]) == len(expected)
        if compacted and b"k8" not in latest and b"k9" not in latest:
            break
        assert time.time() < deadline, f"not compacted in time: {got[:30]}"
        time.sleep(0.3)
    for k, v in expected.items():
        assert latest[k] == v
        # The latest value is read at the offset it was produced at.
        assert (k, v) in offsets
