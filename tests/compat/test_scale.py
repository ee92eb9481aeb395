"""Scale on one broker (issue 13): descriptors are a bounded resource. A broker whose open-file
limit is 1,024 serves 5,000 partitions, every one written and read, without passing the limit;
running out of descriptors fails only the operations that needed one, with retriable errors,
and never takes a log dir offline."""
import os
import socket
import struct
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import StromBroker


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class FdWatch:
    """The most descriptors a process held, sampled every 50 ms until stopped."""

    def __init__(self, pid):
        self.pid, self.most, self.done = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            try:
                self.most = max(self.most, open_fds(self.pid))
            except OSError:
                return
            time.sleep(0.05)

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.most


def create(admin, topics, partitions, timeout=300):
    fs = admin.create_topics([NewTopic(t, partitions, 1) for t in topics], request_timeout=timeout)
    for t, f in fs.items():
        f.result(timeout)


def produce_each(bootstrap, tps, timeout=120):
    """One record to each (topic, partition), its value naming it; every delivery acked."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20,
                  "delivery.timeout.ms": timeout * 1000})
    failed = []
    for i, (t, part) in enumerate(tps):
        p.produce(t, value=f"{t}/{part}", partition=part, on_delivery=lambda e, m: e and failed.append(e))
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(timeout + 30) == 0
    assert not failed, failed[:5]


def consume_all(bootstrap, tps, within=180):
    """Every record of the partitions `tps`, read from the beginning, as a set of values."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("scale"), "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(t, p, 0) for t, p in tps])
    got, deadline = set(), time.time() + within
    while len(got) < len(tps) and time.time() < deadline:
        for m in c.consume(1000, 1.0):
            if m.error() is None:
                got.add(m.value().decode())
    c.close()
    return got


def assert_no_dir_offline(broker):
    text = open(broker.log_path).read()
    assert "offline" not in text.lower(), [l for l in text.splitlines() if "offline" in l.lower()][:5]


def test_five_thousand_partitions_under_a_limit_of_1024_descriptors():
    """50 topics of 100 partitions on a broker limited to 1,024 descriptors: created,
    each partition written and read back, the descriptors never near the limit."""
    broker = StromBroker(nofile=1024).start()
    try:
        watch = FdWatch(broker.proc.pid)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topics = [unique(f"many{i}") for i in range(50)]
        create(admin, topics, 100)
        tps = [(t, p) for t in topics for p in range(100)]
        produce_each(broker.bootstrap, tps)
        got = consume_all(broker.bootstrap, tps)
        most = watch.stop()
        assert got == {f"{t}/{p}" for t, p in tps}, f"{len(got)} of {len(tps)} records read back"
        assert most < 1024, f"{most} descriptors"
        print(f"5000 partitions: at most {most} descriptors")
        assert_no_dir_offline(broker)
    finally:
        broker.cleanup()


def set_nofile(pid, soft, hard=1024):
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={soft}:{hard}"], check=True)


def test_running_out_of_descriptors_fails_the_create_not_the_broker():
    """With the broker's open-file limit dropped below what it holds, creating a topic fails
    with an error while the partitions already there keep their data; once descriptors are
    free again the broker creates the topic's partitions itself, a later create succeeds,
    and every partition is written and read. No log dir goes offline."""
    broker = StromBroker(nofile=1024).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        before = unique("before")
        create(admin, [before], 20)
        before_tps = [(before, p) for p in range(20)]
        produce_each(broker.bootstrap, before_tps)

        during = unique("during")
        set_nofile(broker.proc.pid, 16)
        try:
            with pytest.raises(KafkaException) as failed:
                create(admin, [during], 20, timeout=60)
            print("create while out of descriptors:", failed.value)
        finally:
            set_nofile(broker.proc.pid, 1024)

        after = unique("after")
        create(admin, [after], 20)
        tps = before_tps + [(t, p) for t in (during, after) for p in range(20)]
        # The partitions of the create that failed come up by themselves.
        produce_each(broker.bootstrap, tps[20:])
        got = consume_all(broker.bootstrap, tps)
        assert got == {f"{t}/{p}" for t, p in tps}, sorted({f"{t}/{p}" for t, p in tps} - got)[:10]
        assert_no_dir_offline(broker)
    finally:
        broker.cleanup()


def api_versions_answered(source, port, timeout=10):
    """Connects from `source` (any 127/8 address) and sends ApiVersions v0: the open socket
    when the broker answered, None when it closed the connection instead."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    body = struct.pack(">hhih", 18, 0, 7, 4) + b"test"
    try:
        s.sendall(struct.pack(">i", len(body)) + body)
        head = s.recv(4)
    except (ConnectionResetError, BrokenPipeError):
        head = b""
    if len(head) < 4:
        s.close()
        return None
    size = struct.unpack(">i", head)[0]
    while size > 0:
        size -= len(s.recv(size))
    return s


def test_connections_per_ip_with_overrides():
    """`max.connections.per.ip` and its overrides, as in Kafka: an address past its share has
    each new connection closed at once, other addresses are untouched, a closed connection
    frees its slot, and an override of 0 shuts an address out."""
    broker = StromBroker(extra={"max.connections.per.ip": "3",
                                "max.connections.per.ip.overrides": "127.0.0.7:2,127.0.0.8:0"}).start()
    try:
        held = [api_versions_answered("127.0.0.7", broker.port) for _ in range(2)]
        assert all(held), "the first two from 127.0.0.7"
        assert api_versions_answered("127.0.0.7", broker.port) is None, "a third from 127.0.0.7"
        others = [api_versions_answered("127.0.0.9", broker.port) for _ in range(3)]
        assert all(others), "the default quota, 3, for another address"
        assert api_versions_answered("127.0.0.9", broker.port) is None
        assert api_versions_answered("127.0.0.8", broker.port) is None, "an override of 0"
        held.pop().close()
        deadline, again = time.time() + 10, None
        while again is None and time.time() < deadline:
            again = api_versions_answered("127.0.0.7", broker.port)
            time.sleep(0.05)
        assert again, "the closed connection's slot is free again"
        # A real client from an address with room works as ever.
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        assert admin.list_topics(timeout=10).brokers
        assert "max.connections.per.ip reached" in open(broker.log_path).read()
        for s in held + others + [again]:
            s.close()
    finally:
        broker.cleanup()


def test_per_ip_quota_of_zero_needs_overrides():
    broker = StromBroker(extra={"max.connections.per.ip": "0"}).spawn()
    try:
        assert broker.proc.wait(30) != 0
        text = open(broker.log_path).read()
        assert "max.connections.per.ip can be 0 only if max.connections.per.ip.overrides is set" in text, text[-2000:]
    finally:
        broker.cleanup()


def fifteen_connections(broker):
    """Seconds to open fifteen connections back to back, each answered."""
    t0 = time.time()
    socks = [api_versions_answered("127.0.0.10", broker.port) for _ in range(15)]
    took = time.time() - t0
    assert all(socks)
    for s in socks:
        s.close()
    return took


def test_connection_creation_rate_paces_new_connections():
    """`listener.name.plaintext.max.connection.creation.rate=5`: fifteen connections opened
    back to back are all served, the ones past the first second's five only as the rate
    allows (they wait in the listen backlog, as Kafka's acceptor makes them wait): two
    seconds at that rate. The broker-wide `max.connection.creation.rate=5` leaves the
    inter-broker listener (PLAINTEXT, Kafka's default) alone, as Kafka 4.1.2 does."""
    broker = StromBroker(extra={"listener.name.plaintext.max.connection.creation.rate": "5"}).start()
    try:
        took = fifteen_connections(broker)
        assert took >= 1.5, f"15 connections at 5/s took only {took:.2f} s"
        print(f"15 connections at listener.name.plaintext.max.connection.creation.rate=5: {took:.2f} s")
    finally:
        broker.cleanup()
    broker = StromBroker(extra={"max.connection.creation.rate": "5"}).start()
    try:
        took = fifteen_connections(broker)
        # Paced, they would take two seconds.
        assert took < 1.0, f"the inter-broker listener was paced: {took:.2f} s"
    finally:
        broker.cleanup()


def test_a_topic_too_large_for_one_metadata_batch_is_refused_and_the_quorum_lives():
    """One topic of 8,000 partitions is created (its records, 1.3 MB, once passed the
    metadata log's 1 MiB batch limit, which stopped the metadata quorum for good: every
    later request timed out). 10,000 partitions in one topic are more records than one
    operation may make: refused with POLICY_VIOLATION, as Kafka refuses them. The broker
    goes on serving: another topic is created, written and read."""
    broker = StromBroker().start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        big = unique("big")
        create(admin, [big], 8000, timeout=600)
        assert len(admin.list_topics(big, timeout=30).topics[big].partitions) == 8000
        with pytest.raises(KafkaException) as refused:
            create(admin, [unique("huge")], 10000, timeout=120)
        assert refused.value.args[0].code() == KafkaError.POLICY_VIOLATION, refused.value
        after = unique("after")
        create(admin, [after], 3, timeout=60)
        tps = [(after, p) for p in range(3)] + [(big, 7999)]
        produce_each(broker.bootstrap, tps)
        assert consume_all(broker.bootstrap, tps) == {f"{t}/{p}" for t, p in tps}
    finally:
        broker.cleanup()
