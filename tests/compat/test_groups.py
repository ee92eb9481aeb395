"""Consumer groups with real clients: members in their own processes share a topic's
partitions, survive a member leaving or being killed (at-least-once, nothing skipped), two
groups each get every record, committed offsets survive a broker restart, and the admin
client lists, describes and deletes groups."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))


def produce(bootstrap, topic, n, start=0):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2})
    for i in range(start, start + n):
        p.produce(topic, key=str(i), value=str(i))
    assert p.flush(30) == 0


def topic_with(bootstrap, partitions=6):
    name = f"grp-{uuid.uuid4().hex[:8]}"
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
    return name


class Member:
    def __init__(self, bootstrap, group, topic, seconds, extra=None):
        args = [sys.executable, os.path.join(HERE, "group_member.py"), bootstrap, group, topic, str(seconds),
                json.dumps(extra or {})]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def records(self):
        return [l for l in self.lines if "v" in l]

    def assigned(self):
        a = [l["assigned"] for l in self.lines if "assigned" in l]
        return a[-1] if a else None

    def wait(self):
        self.proc.wait(120)
        self.reader.join(10)


def wait_for(cond, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return False


def test_three_members_share_partitions_and_survive_a_kill(broker):
    topic = topic_with(broker.bootstrap)
    produce(broker.bootstrap, topic, 3000)
    group = f"g-{uuid.uuid4().hex[:6]}"
    members = [Member(broker.bootstrap, group, topic, 40) for _ in range(3)]
    # Every partition owned by exactly one member.
    assert wait_for(lambda: all(m.assigned() for m in members) and
                    sorted(p for m in members for p in m.assigned()) == list(range(6))), \
        [m.assigned() for m in members]
    assert wait_for(lambda: sum(len(m.records()) for m in members) >= 3000)
    # Kill one member outright; the others take over its partitions.
    victim = members[0]
    victim_partitions = set(victim.assigned())
    victim.proc.send_signal(signal.SIGKILL)
    victim.wait()
    produce(broker.bootstrap, topic, 3000, start=3000)
    survivors = members[1:]
    assert wait_for(lambda: sorted(p for m in survivors for p in (m.assigned() or [])) == list(range(6)), 60)
    assert wait_for(lambda: len({r["v"] for m in members for r in m.records()}) >= 6000, 60)
    for m in survivors:
        m.wait()
    seen = [r["v"] for m in members for r in m.records()]
    assert set(seen) == {str(i) for i in range(6000)}, "nothing skipped"
    took_over = {r["p"] for m in survivors for r in m.records()}
    assert victim_partitions <= took_over


def test_a_member_that_leaves_hands_over_at_the_committed_offsets(broker):
    topic = topic_with(broker.bootstrap, partitions=2)
    produce(broker.bootstrap, topic, 1000)
    group = f"g-{uuid.uuid4().hex[:6]}"
    first = Member(broker.bootstrap, group, topic, 6)
    first.wait()  # consumed, committed, left the group cleanly
    done = {r["v"] for r in first.records()}
    assert len(done) == 1000
    produce(broker.bootstrap, topic, 500, start=1000)
    second = Member(broker.bootstrap, group, topic, 8)
    second.wait()
    got = [r["v"] for r in second.records()]
    assert set(got) == {str(i) for i in range(1000, 1500)}, "resumes at the committed offsets"


def test_two_groups_each_get_every_record(broker):
    topic = topic_with(broker.bootstrap, partitions=3)
    produce(broker.bootstrap, topic, 900)
    a = Member(broker.bootstrap, "pub-a", topic, 8)
    b = Member(broker.bootstrap, "pub-b", topic, 8)
    a.wait()
    b.wait()
    for m in (a, b):
        assert sorted(int(r["v"]) for r in m.records()) == list(range(900))


def test_commit_before_and_after_processing(broker):
    """At-most-once: commit, then process — a crash between loses the record. At-least-once:
    process, then commit — a crash between redelivers it."""
    topic = topic_with(broker.bootstrap, partitions=1)
    produce(broker.bootstrap, topic, 10)
    for mode in ("at-most-once", "at-least-once"):
        group = f"{mode}-{uuid.uuid4().hex[:6]}"
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                      "enable.auto.commit": False})
        c.subscribe([topic])
        m = None
        while m is None or m.error():
            m = c.poll(1)
        if mode == "at-most-once":
            c.commit(message=m, asynchronous=False)  # committed offset: 1; the crash comes before processing
        c.close()
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
        c.subscribe([topic])
        m2 = None
        while m2 is None or m2.error():
            m2 = c.poll(1)
        c.close()
        expected = 1 if mode == "at-most-once" else 0
        assert m2.offset() == expected, mode


def test_committed_offsets_survive_a_broker_kill(fresh_broker):
    b = fresh_broker
    topic = topic_with(b.bootstrap, partitions=2)
    produce(b.bootstrap, topic, 200)
    m = Member(b.bootstrap, "durable", topic, 6)
    m.wait()
    assert len(m.records()) == 200
    b.stop(signal.SIGKILL)
    b.start()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    offsets = a.list_consumer_group_offsets([__import__("confluent_kafka").ConsumerGroupTopicPartitions("durable")])
    got = {tp.partition: tp.offset for tp in offsets["durable"].result(30).topic_partitions}
    assert sum(got.values()) == 200, got
    again = Member(b.bootstrap, "durable", topic, 5)
    again.wait()
    assert again.records() == []


def test_kafka_python_group_consumer(broker):
    from kafka import KafkaConsumer
    topic = topic_with(broker.bootstrap, partitions=2)
    produce(broker.bootstrap, topic, 300)
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id="kp-group", auto_offset_reset="earliest",
                      consumer_timeout_ms=8000, enable_auto_commit=False)
    got = [m.value for m in c]
    c.commit()
    c.close()
    assert sorted(int(v) for v in got) == list(range(300))
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id="kp-group", auto_offset_reset="earliest",
                      consumer_timeout_ms=4000)
    assert list(c) == []
    c.close()


def test_admin_lists_describes_and_deletes_groups(broker):
    from confluent_kafka import ConsumerGroupTopicPartitions
    topic = topic_with(broker.bootstrap, partitions=1)
    produce(broker.bootstrap, topic, 10)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "adm-group", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    n = 0
    while n < 10:
        m = c.poll(1)
        if m is not None and not m.error():
            n += 1
    c.commit(asynchronous=False)
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert "adm-group" in [g.group_id for g in a.list_consumer_groups().result(30).valid]
    d = a.describe_consumer_groups(["adm-group"])["adm-group"].result(30)
    assert str(d.state).endswith("STABLE") and len(d.members) == 1
    assert d.members[0].assignment.topic_partitions[0].topic == topic
    offsets = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("adm-group")])["adm-group"].result(30)
    assert [tp.offset for tp in offsets.topic_partitions] == [10]
    # A group with a live member cannot be deleted; an empty one can.
    fut = a.delete_consumer_groups(["adm-group"])["adm-group"]
    try:
        fut.result(30)
        raise AssertionError("deleted a non-empty group")
    except Exception as e:
        assert "NON_EMPTY_GROUP" in str(e) or "68" in str(e), e
    c.close()
    a.delete_consumer_groups(["adm-group"])["adm-group"].result(30)
    assert "adm-group" not in [g.group_id for g in a.list_consumer_groups().result(30).valid]


def test_cooperative_sticky_members_rebalance_incrementally(broker):
    topic = topic_with(broker.bootstrap, partitions=6)
    produce(broker.bootstrap, topic, 600)
    group = f"coop-{uuid.uuid4().hex[:6]}"
    coop = {"partition.assignment.strategy": "cooperative-sticky"}
    first = Member(broker.bootstrap, group, topic, 25, coop)
    assert wait_for(lambda: first.assigned() == list(range(6)))
    second = Member(broker.bootstrap, group, topic, 20, coop)
    # Incremental: the first member keeps what it is not asked to give up.
    assert wait_for(lambda: second.assigned() and len(second.assigned()) == 3
                    and sorted((first.assigned() or []) + second.assigned()) == list(range(6)), 40), \
        (first.lines[-3:], second.lines[-3:])
    first.wait()
    second.wait()
    assert {r["v"] for m in (first, second) for r in m.records()} == {str(i) for i in range(600)}


def test_a_static_member_rejoins_without_a_rebalance(broker):
    topic = topic_with(broker.bootstrap, partitions=2)
    group = f"static-{uuid.uuid4().hex[:6]}"
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    static = {"group.instance.id": "instance-1", "session.timeout.ms": 30000}
    # The dynamic member forms the group first, so it leads it (Kafka: the first member to
    # join leads). A static leader coming back with JoinGroup < v9, as librdkafka sends,
    # rebalances the group, in Kafka too (KIP-814's skip_assignment needs v9).
    other = Member(broker.bootstrap, group, topic, 30)
    assert wait_for(lambda: other.assigned() is not None)
    first = Member(broker.bootstrap, group, topic, 6, static)
    assert wait_for(lambda: first.assigned() is not None and other.assigned() is not None
                    and len(first.assigned()) + len(other.assigned()) == 2)
    time.sleep(2)  # let the group settle
    changes_before = len([l for l in other.lines if "assigned" in l])
    first.proc.send_signal(signal.SIGKILL)  # gone without leaving: its session is 30 s
    first.wait()
    before = a.describe_consumer_groups([group])[group].result(30)
    again = Member(broker.bootstrap, group, topic, 6, static)
    assert wait_for(lambda: again.assigned() is not None, 20)
    after = a.describe_consumer_groups([group])[group].result(30)
    assert len(after.members) == 2
    # As Kafka: the static member takes its place under a new member id (the old id is
    # fenced), and nobody else is disturbed.
    static_before = [m.member_id for m in before.members if m.group_instance_id == "instance-1"]
    static_after = [m.member_id for m in after.members if m.group_instance_id == "instance-1"]
    assert len(static_before) == 1 and len(static_after) == 1
    assert static_after != static_before, "a new member id for the returning static member"
    time.sleep(2)
    other_assignments = [l["assigned"] for l in other.lines if "assigned" in l]
    assert len(other_assignments) == changes_before, f"the other member was rebalanced: {other_assignments}"
    again.wait()
    other.proc.send_signal(signal.SIGTERM)
    other.wait()
