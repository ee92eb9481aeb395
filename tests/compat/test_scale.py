"""Scale on one broker (issue 13): descriptors are a bounded resource. A broker whose open-file
limit is 1,024 serves 5,000 partitions, every one written and read, without passing the limit;
running out of descriptors fails only the operations that needed one, with retriable errors,
and never takes a log dir offline."""
import os
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
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
