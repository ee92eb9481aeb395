"""Transactions (exactly-once) with real clients: a confluent-kafka transactional producer's
committed transactions are read by read_committed consumers and its aborted ones are not; a
second producer with the same transactional.id fences the first and aborts its open
transaction; an abandoned transaction is aborted by its timeout so the last stable offset moves
on; consume-transform-produce commits the group's offsets with the outputs
(send_offsets_to_transaction), and committed() with require_stable waits for an open
transaction's offsets; kafka-python's transactional producer and read_committed consumer too."""
import collections
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import STROM, StromBroker

FENCED = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)


@pytest.fixture
def fast_abort_broker():
    """A broker that looks for timed-out transactions every 500 ms."""
    b = StromBroker(extra={"transaction.abort.timed.out.transaction.cleanup.interval.ms": "500"}).start()
    yield b
    b.cleanup()


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_topic(bootstrap, partitions):
    name = unique("txn")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
    return name


def txn_producer(bootstrap, tid=None, **extra):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid or unique("tid"), "linger.ms": 5, **extra})
    p.init_transactions(30)
    return p


def produce_plain(bootstrap, topic, values, keyed=True):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i, v in enumerate(values):
        p.produce(topic, key=str(i) if keyed else None, value=v)
    assert p.flush(30) == 0


def read(bootstrap, topic, partitions, isolation, count, within=30):
    """(partition, offset, value) of the records read with `isolation` from the start of every
    partition, in read order: until `count` are read and every partition is at its end (the
    last stable offset for read_committed), or `within` seconds have passed."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("read"), "isolation.level": isolation,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p) for p in range(partitions)])
    out, at_end = [], set()
    deadline = time.time() + within
    while (len(out) < count or len(at_end) < partitions) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
            at_end.add(m.partition())
            continue
        at_end.discard(m.partition())
        out.append((m.partition(), m.offset(), m.value().decode()))
    c.close()
    return out


def check_exactly(records, expected, aborted=(), sent=None):
    """Problems with `records` ((partition, offset, value) in read order) against `expected`,
    the values to be read once each: lost, duplicated, aborted ones read, unexpected ones, and
    per partition offsets not increasing or (given `sent`, every value in send order) values
    out of send order. Empty if none."""
    problems = []
    counts = collections.Counter(v for _, _, v in records)
    expected, aborted = set(expected), set(aborted)
    for what, values in [("lost", expected - counts.keys()),
                         ("duplicated", {v for v, n in counts.items() if n > 1}),
                         ("aborted but read", aborted & counts.keys()),
                         ("unexpected", counts.keys() - expected - aborted)]:
        if values:
            problems.append(f"{what}: {len(values)}, e.g. {sorted(values)[:5]}")
    rank = {v: i for i, v in enumerate(sent or [])}
    last = {}
    for p, offset, v in records:
        if p in last:
            prev_offset, prev = last[p]
            if offset <= prev_offset:
                problems.append(f"partition {p}: offset {offset} after {prev_offset}")
            if v in rank and prev in rank and rank[v] < rank[prev]:
                problems.append(f"partition {p}: {v} after {prev}")
        last[p] = (offset, v)
    return problems


def test_read_committed_reads_committed_transactions_only(broker):
    """Ten transactions of 20 keyed records over three partitions, even ones committed and odd
    ones aborted (after their records were written): read_committed reads the 100 committed
    records once each in send order, read_uncommitted all 200."""
    topic = new_topic(broker.bootstrap, 3)
    p = txn_producer(broker.bootstrap)
    errors = []
    sent, committed, aborted = [], [], []
    for t in range(10):
        p.begin_transaction()
        values = [f"t{t}-r{i}" for i in range(20)]
        for i, v in enumerate(values):
            p.produce(topic, key=f"k{i}", value=v, on_delivery=lambda e, m: e and errors.append(e))
        assert p.flush(30) == 0
        if t % 2 == 0:
            p.commit_transaction(30)
            committed += values
        else:
            p.abort_transaction(30)
            aborted += values
        sent += values
    assert errors == []
    got = read(broker.bootstrap, topic, 3, "read_committed", len(committed))
    assert check_exactly(got, committed, aborted, sent) == []
    assert len({p for p, _, _ in got}) == 3, "keys spread over the three partitions"
    got = read(broker.bootstrap, topic, 3, "read_uncommitted", len(sent))
    assert check_exactly(got, sent, sent=sent) == []


def test_a_new_producer_fences_the_old_one(broker):
    """Producer B initialising A's transactional.id aborts A's open transaction; A's next
    writes fail and its commit fails fatally (fenced); B's committed records are read, A's
    never (read_committed)."""
    topic = new_topic(broker.bootstrap, 1)
    tid = unique("tid")
    a = txn_producer(broker.bootstrap, tid)
    a.begin_transaction()
    a_before = [f"a-before-{i}" for i in range(5)]
    for v in a_before:
        a.produce(topic, value=v, partition=0)
    assert a.flush(30) == 0
    b = txn_producer(broker.bootstrap, tid)

    delivered_after = []
    for i in range(5):
        a.produce(topic, value=f"a-after-{i}", partition=0,
                  on_delivery=lambda e, m: e is None and delivered_after.append(m.value()))
    # The fencing reaches A through its produce (flush raises the fatal error) or its commit.
    try:
        a.flush(30)
        with pytest.raises(KafkaException) as raised:
            a.commit_transaction(30)
        err = raised.value.args[0]
    except KafkaException as e:
        err = e.args[0]
    assert delivered_after == [], "a fenced producer's records were written"
    if err.txn_requires_abort():  # a fenced write may be abortable first (KIP-588): then the abort is fenced
        with pytest.raises(KafkaException) as raised:
            a.abort_transaction(30)
        err = raised.value.args[0]
    assert err.fatal() and err.code() in FENCED, err

    b.begin_transaction()
    b_values = [f"b-{i}" for i in range(5)]
    for v in b_values:
        b.produce(topic, value=v, partition=0)
    b.commit_transaction(30)
    got = read(broker.bootstrap, topic, 1, "read_committed", len(b_values))
    assert check_exactly(got, b_values, a_before, a_before + b_values) == []
    got = read(broker.bootstrap, topic, 1, "read_uncommitted", len(a_before + b_values))
    assert check_exactly(got, a_before + b_values, sent=a_before + b_values) == []


ABANDON = r"""
import sys, time
from confluent_kafka import Producer
bootstrap, topic, tid = sys.argv[1:4]
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "transaction.timeout.ms": 2000})
p.init_transactions(30)
p.begin_transaction()
errors = []
for i in range(5):
    p.produce(topic, value=f"abandoned-{i}", partition=0, on_delivery=lambda e, m: e and errors.append(str(e)))
left = p.flush(30)
print("flushed" if left == 0 and not errors else f"not flushed: {left} {errors}", flush=True)
time.sleep(600)
"""


def test_an_abandoned_transaction_times_out(fast_abort_broker):
    """A producer killed (SIGKILL) inside a transaction with transaction.timeout.ms=2000 holds
    the last stable offset back only until the broker aborts the transaction: records another
    producer commits after it on the same partition are read (read_committed), the abandoned
    ones never."""
    b = fast_abort_broker
    topic = new_topic(b.bootstrap, 1)
    child = subprocess.Popen([sys.executable, "-c", ABANDON, b.bootstrap, topic, unique("tid")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "flushed"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    abandoned = [f"abandoned-{i}" for i in range(5)]

    p = txn_producer(b.bootstrap)
    p.begin_transaction()
    later = [f"later-{i}" for i in range(5)]
    for v in later:
        p.produce(topic, value=v, partition=0)
    p.commit_transaction(30)
    got = read(b.bootstrap, topic, 1, "read_committed", len(later), within=30)
    assert check_exactly(got, later, abandoned, abandoned + later) == []
    got = read(b.bootstrap, topic, 1, "read_uncommitted", len(abandoned + later))
    assert check_exactly(got, abandoned + later, sent=abandoned + later) == []


def test_consume_transform_produce_commits_offsets_with_outputs(broker):
    """A processor reads 100 inputs in group g (read_committed, no auto commit) and, ten at a
    time in one transaction, writes them upper-cased and commits its positions with
    send_offsets_to_transaction: afterwards the group's committed offsets are the inputs' end
    offsets and the output holds each transformed input once."""
    src, dst, group = new_topic(broker.bootstrap, 3), new_topic(broker.bootstrap, 3), unique("g")
    inputs = [f"in-{i}" for i in range(100)]
    produce_plain(broker.bootstrap, src, inputs)

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "isolation.level": "read_committed",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    producer = txn_producer(broker.bootstrap)
    consumer.subscribe([src])
    done = 0
    deadline = time.time() + 60
    while done < len(inputs) and time.time() < deadline:
        msgs = consumer.consume(10, timeout=1)
        if not msgs:
            continue
        assert [m.error() for m in msgs if m.error()] == []
        producer.begin_transaction()
        for m in msgs:
            producer.produce(dst, key=m.key(), value=m.value().upper())
        positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        done += len(msgs)
    assert done == len(inputs), f"processed {done} of {len(inputs)}"

    partitions = [TopicPartition(src, p) for p in range(3)]
    committed = [tp.offset for tp in consumer.committed(partitions, timeout=30)]
    ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
    consumer.close()
    assert committed == ends and sum(ends) == len(inputs), (committed, ends)
    outputs = [v.upper() for v in inputs]
    got = read(broker.bootstrap, dst, 3, "read_committed", len(outputs))
    assert check_exactly(got, outputs) == []


def test_kafka_python_transactions(broker):
    """kafka-python's transactional producer commits, aborts and commits again; its
    read_committed consumer reads the two committed transactions only."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    if not all(hasattr(KafkaProducer, f) for f in ("init_transactions", "begin_transaction",
                                                   "commit_transaction", "abort_transaction")):
        pytest.skip("this kafka-python has no transactional producer API")
    topic = new_topic(broker.bootstrap, 1)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=unique("tid"))
    p.init_transactions()
    sent, committed, aborted = [], [], []
    for name, commit in [("first", True), ("second", False), ("third", True)]:
        values = [f"{name}-{i}" for i in range(3)]
        p.begin_transaction()
        for v in values:
            p.send(topic, value=v.encode(), partition=0)
        p.flush(30)
        if commit:
            p.commit_transaction()
            committed += values
        else:
            p.abort_transaction()
            aborted += values
        sent += values
    p.close(timeout=10)

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed",
                      enable_auto_commit=False, auto_offset_reset="earliest")
    c.assign([KTP(topic, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < len(committed) and time.time() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            got += [(r.partition, r.offset, r.value.decode()) for r in recs]
    c.close()
    assert check_exactly(got, committed, aborted, sent) == []
    got = read(broker.bootstrap, topic, 1, "read_uncommitted", len(sent))
    assert check_exactly(got, sent, sent=sent) == []


def test_committed_waits_for_an_open_transactions_offsets(broker):
    """While a transaction holds offsets for group g (send_offsets_to_transaction, not yet
    committed), committed() with require_stable (read_committed) answers neither the older
    offset nor the pending one: it waits, and returns the new offset once it is committed."""
    topic, group = new_topic(broker.bootstrap, 1), unique("g")
    produce_plain(broker.bootstrap, topic, [f"v{i}" for i in range(10)], keyed=False)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    p = txn_producer(broker.bootstrap)
    p.begin_transaction()
    p.send_offsets_to_transaction([TopicPartition(topic, 0, 7)], c.consumer_group_metadata(), 30)

    result = {}

    def fetch():
        checker = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                            "isolation.level": "read_committed", "enable.auto.commit": False})
        try:
            result["offset"] = checker.committed([TopicPartition(topic, 0)], timeout=30)[0].offset
        except KafkaException as e:
            result["error"] = e
        result["at"] = time.time()
        checker.close()

    t = threading.Thread(target=fetch, daemon=True)
    t.start()
    time.sleep(1)
    committing_at = time.time()
    p.commit_transaction(30)
    t.join(40)
    c.close()
    assert "error" not in result and result.get("offset") == 7, result
    assert result["at"] >= committing_at, "committed() answered before the transaction committed"


def strom_cli(broker, *args):
    out = subprocess.run([STROM, *args, "--bootstrap-server", broker.bootstrap], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_transactions_tools_list_describe_and_abort_a_hanging_transaction(broker, kafka_tools):
    """`strom transactions` and Kafka's `kafka-transactions` see an open transaction (its
    coordinator's state, the partition's producer and where its transaction starts); aborting
    it in the partition (`kafka-transactions abort --start-offset`, WriteTxnMarkers from an
    admin client) releases read_committed consumers, which never read its records, and
    `strom consume --isolation-level read_committed` agrees."""
    topic = new_topic(broker.bootstrap, 1)
    tid = unique("hanging")
    p = txn_producer(broker.bootstrap, tid)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=f"open-{i}", partition=0)
    assert p.flush(30) == 0

    listed = strom_cli(broker, "transactions", "list", "--state", "Ongoing")
    assert any(tid in line and "Ongoing" in line for line in listed.splitlines()), listed
    described = strom_cli(broker, "transactions", "describe", "--transactional-id", tid)
    assert f"{topic}-0" in described and "Ongoing" in described, described
    producers = strom_cli(broker, "transactions", "describe-producers", "--topic", topic, "--partition", "0")
    row = producers.splitlines()[1].split()
    assert row[-1] == "0", producers  # the open transaction starts at offset 0
    rc, out, err = kafka_tools.run("kafka-transactions", "--bootstrap-server", broker.bootstrap, "list")
    assert rc == 0 and tid in out, out + err
    # ListTransactions v2 (KIP-1152): the pattern must match the whole transactional id.
    listed = strom_cli(broker, "transactions", "list", "--transactional-id-pattern", "hanging-.*")
    assert tid in listed, listed
    assert tid not in strom_cli(broker, "transactions", "list", "--transactional-id-pattern", "hanging"), listed
    rc, out, err = kafka_tools.run("kafka-transactions", "--bootstrap-server", broker.bootstrap, "list",
                                   "--transactional-id-pattern", tid[:-1] + ".")
    assert rc == 0 and tid in out, out + err
    rc, out, err = kafka_tools.run("kafka-transactions", "--bootstrap-server", broker.bootstrap, "list",
                                   "--transactional-id-pattern", tid[:-1])
    assert rc == 0 and tid not in out, out + err
    bad = subprocess.run([STROM, "transactions", "list", "--transactional-id-pattern", "(",
                          "--bootstrap-server", broker.bootstrap], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "INVALID_REGULAR_EXPRESSION" in bad.stderr, bad.stderr
    rc, out, err = kafka_tools.run("kafka-transactions", "--bootstrap-server", broker.bootstrap,
                                   "describe", "--transactional-id", tid)
    assert rc == 0 and "Ongoing" in out and f"{topic}-0" in out, out + err

    produce_plain(broker.bootstrap, topic, ["after"], keyed=False)
    assert read(broker.bootstrap, topic, 1, "read_committed", 1, within=3) == [], "held back by the open transaction"
    rc, out, err = kafka_tools.run("kafka-transactions", "--bootstrap-server", broker.bootstrap, "abort",
                                   "--topic", topic, "--partition", "0", "--start-offset", "0")
    assert rc == 0, out + err
    got = read(broker.bootstrap, topic, 1, "read_committed", 1)
    assert [v for _, _, v in got] == ["after"], got
    out = subprocess.run([STROM, "consume", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                          "--from-beginning", "--isolation-level", "read_committed", "--max-messages", "1",
                          "--timeout-ms", "10000"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == ["after"], out.stdout + out.stderr


def test_a_coordinator_left_alone_with_a_timed_out_transaction_shuts_down():
    """Three nodes; a transaction is left open; the two nodes that do not coordinate it are
    SIGKILLed, so its abort at the timeout can reach neither followers nor the quorum; then
    the coordinator is SIGTERMed: it exits, not waiting for that write for ever. Bug pinned:
    found by librdkafka's 0103 in the suite, whose last broker never exited."""
    from conftest import StromCluster
    from test_eos_faults import txn_partition
    c = StromCluster(3, extra={"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"}).start()
    try:
        topic, tid = unique("stop"), unique("stop")
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(30)
        p = Producer({"bootstrap.servers": c.bootstrap, "transactional.id": tid,
                      "transaction.timeout.ms": 1500})
        p.init_transactions(30)
        p.begin_transaction()
        for i in range(10):
            p.produce(topic, value=f"v{i}", partition=i % 3)
        assert p.flush(30) == 0
        md = admin.list_topics("__transaction_state", timeout=10)
        coordinator = md.topics["__transaction_state"].partitions[txn_partition(tid)].leader
        for n in c.nodes:
            if n is not c.node(coordinator):
                n.stop(signal.SIGKILL)
        time.sleep(3)  # past the timeout: the abort is being written, and cannot be
        last = c.node(coordinator)
        last.proc.send_signal(signal.SIGTERM)
        last.proc.wait(timeout=30)
    finally:
        c.cleanup()
