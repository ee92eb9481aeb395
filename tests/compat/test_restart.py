"""Restarts: a broker stopped with SIGTERM (clean) or SIGKILL (crash) in the middle of a
test keeps every record it acknowledged, topics and configs; an idempotent producer whose
batches are retried across a crash gets no duplicates."""
import signal
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic


def read_all(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "r", "enable.partition.eof": True,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, eof, idle = [], set(), 0
    while len(eof) < partitions:
        m = c.poll(1)
        if m is None:
            idle += 1
            assert idle < 30
            continue
        if m.error():
            if m.error().code() == -191:
                eof.add(m.partition())
                continue
            raise AssertionError(m.error())
        eof.discard(m.partition())
        out.append((m.partition(), m.offset(), m.value()))
    c.close()
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_acknowledged_records_survive_a_restart(fresh_broker, sig):
    b = fresh_broker
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("keep", num_partitions=3, replication_factor=1, config={"retention.ms": "86400000"})])["keep"].result(30)
    acked = []
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2})
    for i in range(20_000):
        p.produce("keep", key=str(i), value=f"v{i}", on_delivery=lambda e, m: e is None and acked.append(m.value()))
    assert p.flush(30) == 0
    assert len(acked) == 20_000
    code = b.stop(sig)
    assert code == (0 if sig == signal.SIGTERM else -9)
    b.start()
    got = read_all(b.bootstrap, "keep", 3)
    assert sorted(v for _, _, v in got) == sorted(acked)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    r = ConfigResource("topic", "keep")
    assert a.describe_configs([r])[r].result(30)["retention.ms"].value == "86400000"
    # The log continues after the restart.
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    p.produce("keep", key="0", value="after")
    assert p.flush(30) == 0
    assert len(read_all(b.bootstrap, "keep", 3)) == 20_001


def test_idempotent_producer_retries_across_a_crash_are_not_duplicated(fresh_broker):
    b = fresh_broker
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("idem", num_partitions=2, replication_factor=1)])["idem"].result(30)
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  "message.timeout.ms": 120000, "retry.backoff.ms": 50})
    errors, acked = [], []

    def done(err, msg):
        (errors if err else acked).append(err or msg.value())

    # The producer runs until told to stop; the crash waits for the first acknowledgements
    # (not a fixed sleep: a slow CI machine may take seconds to the first ack), and the stop
    # waits for acknowledgements after the restart, so the crash always lands mid-stream.
    stop = threading.Event()
    produced = [0]

    def produce():
        i = 0
        while not stop.is_set():
            try:
                p.produce("idem", key=str(i % 50), value=f"{i}", on_delivery=done)
                i += 1
            except BufferError:
                p.poll(0.05)
                continue
            p.poll(0)
            if i % 200 == 0:
                time.sleep(0.01)
        produced[0] = i
        p.flush(120)

    def wait_for_acks(at_least, timeout=60):
        deadline = time.time() + timeout
        while len(acked) < at_least and time.time() < deadline and not errors:
            time.sleep(0.02)
        assert len(acked) >= at_least, f"{len(acked)} acknowledged, wanted {at_least}"

    t = threading.Thread(target=produce)
    t.start()
    try:
        wait_for_acks(500)
        b.stop(signal.SIGKILL)  # batches in flight are retried by the producer
        acked_at_crash = len(acked)
        time.sleep(0.5)
        b.start()
        wait_for_acks(acked_at_crash + 2000)
    finally:
        stop.set()
        t.join(180)
    n = produced[0]
    assert not errors, errors[:3]
    assert 0 < acked_at_crash < n, "the crash happened mid-stream"
    assert len(acked) == n
    values = [v for _, _, v in read_all(b.bootstrap, "idem", 2)]
    assert len(values) == len(set(values)), f"{len(values) - len(set(values))} duplicates"
    assert sorted(int(v) for v in values) == list(range(n))
