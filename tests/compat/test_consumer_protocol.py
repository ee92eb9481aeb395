"""The consumer group protocol of KIP-848 (`group.protocol=consumer`) with confluent-kafka:
members in their own processes get disjoint server-side assignments, a killed member's
partitions move to the others with nothing skipped, members join without stopping the
others, a static member that leaves for now comes back to its partitions, and the admin
client describes the group (ConsumerGroupDescribe)."""
import signal
import time
import uuid

import pytest
from confluent_kafka import ConsumerGroupType
from confluent_kafka.admin import AdminClient

from conftest import StromBroker
from test_groups import Member, produce, topic_with, wait_for

CONSUMER = {"group.protocol": "consumer"}



# Kafka's defaults are a 45 s session and a 5 s heartbeat; shorter here so that a killed
# member is noticed within the test's patience. As in Kafka, the session and heartbeat must
# lie within their min/max keys, so those are lowered too.
FAST_CONSUMER_GROUPS = {
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.session.timeout.ms": "6000",
    "group.consumer.heartbeat.interval.ms": "500",
    "group.consumer.min.heartbeat.interval.ms": "500",
}

@pytest.fixture(scope="module")
def broker():
    b = StromBroker(FAST_CONSUMER_GROUPS).start()
    yield b
    b.cleanup()


def owned(members):
    return sorted(p for m in members for p in (m.assigned() or []))


def test_members_share_partitions_and_survive_a_kill(broker):
    topic = topic_with(broker.bootstrap)
    produce(broker.bootstrap, topic, 3000)
    group = f"kip848-{uuid.uuid4().hex[:6]}"
    members = [Member(broker.bootstrap, group, topic, 40, CONSUMER) for _ in range(3)]
    assert wait_for(lambda: owned(members) == list(range(6))
                    and all(len(m.assigned() or []) == 2 for m in members)), \
        [m.assigned() for m in members]
    assert wait_for(lambda: len({r["v"] for m in members for r in m.records()}) >= 3000)
    victim = members[0]
    victim_partitions = set(victim.assigned())
    victim.proc.send_signal(signal.SIGKILL)
    victim.wait()
    produce(broker.bootstrap, topic, 3000, start=3000)
    survivors = members[1:]
    assert wait_for(lambda: owned(survivors) == list(range(6)), 60), [m.assigned() for m in survivors]
    assert wait_for(lambda: len({r["v"] for m in members for r in m.records()}) >= 6000, 60)
    for m in survivors:
        m.wait()
    seen = {r["v"] for m in members for r in m.records()}
    assert seen == {str(i) for i in range(6000)}, "nothing skipped"
    assert victim_partitions <= {r["p"] for m in survivors for r in m.records()}


def test_a_joining_member_takes_partitions_without_stopping_the_others(broker):
    topic = topic_with(broker.bootstrap)
    group = f"kip848-{uuid.uuid4().hex[:6]}"
    first = Member(broker.bootstrap, group, topic, 30, CONSUMER)
    assert wait_for(lambda: first.assigned() == list(range(6)))
    second = Member(broker.bootstrap, group, topic, 20, CONSUMER)
    assert wait_for(lambda: len(second.assigned() or []) == 3 and owned([first, second]) == list(range(6)), 30), \
        (first.lines[-3:], second.lines[-3:])
    # Incremental: the first member only ever lost partitions, it never held nothing.
    history = [l["assigned"] for l in first.lines if "assigned" in l]
    assert all(h for h in history), history
    assert all(set(later) <= set(earlier) for earlier, later in zip(history, history[1:])), history
    produce(broker.bootstrap, topic, 600)
    second.wait()
    first.wait()
    assert {r["v"] for m in (first, second) for r in m.records()} == {str(i) for i in range(600)}


def test_a_static_member_that_leaves_for_now_gets_its_partitions_back(broker):
    topic = topic_with(broker.bootstrap, partitions=4)
    group = f"kip848-static-{uuid.uuid4().hex[:6]}"
    static = {**CONSUMER, "group.instance.id": "instance-1"}
    other = Member(broker.bootstrap, group, topic, 30, CONSUMER)
    first = Member(broker.bootstrap, group, topic, 6, static)
    assert wait_for(lambda: len(first.assigned() or []) == 2 and owned([first, other]) == list(range(4)))
    mine = first.assigned()
    first.wait()  # closes: a static member leaves with epoch -2 and keeps its partitions
    changes_before = len([l for l in other.lines if "assigned" in l])
    again = Member(broker.bootstrap, group, topic, 6, static)
    assert wait_for(lambda: again.assigned() == mine, 20), again.lines[-3:]
    other_assignments = [l["assigned"] for l in other.lines if "assigned" in l]
    assert len(other_assignments) == changes_before, f"the other member was rebalanced: {other_assignments}"
    again.wait()
    other.proc.send_signal(signal.SIGTERM)
    other.wait()


def test_admin_describes_and_lists_a_consumer_group(broker):
    topic = topic_with(broker.bootstrap, partitions=3)
    group = f"kip848-admin-{uuid.uuid4().hex[:6]}"
    m = Member(broker.bootstrap, group, topic, 20, CONSUMER)
    assert wait_for(lambda: m.assigned() == [0, 1, 2])
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    d = a.describe_consumer_groups([group])[group].result(30)
    assert d.type == ConsumerGroupType.CONSUMER
    assert len(d.members) == 1
    assert sorted(tp.partition for tp in d.members[0].assignment.topic_partitions) == [0, 1, 2]
    listed = a.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(30)
    assert group in [g.group_id for g in listed.valid]
    classic_only = a.list_consumer_groups(types={ConsumerGroupType.CLASSIC}).result(30)
    assert group not in [g.group_id for g in classic_only.valid]
    m.proc.send_signal(signal.SIGTERM)
    m.wait()


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_classic_and_consumer_members_share_one_group(broker, strategy):
    # A classic group in use; a consumer-protocol member joins it (the group becomes a
    # consumer group, the classic members carry on); then one more classic member joins.
    topic = topic_with(broker.bootstrap)
    produce(broker.bootstrap, topic, 3000)
    group = f"mixed-{uuid.uuid4().hex[:6]}"
    classic = {"partition.assignment.strategy": strategy}
    first = Member(broker.bootstrap, group, topic, 45, classic)
    assert wait_for(lambda: first.assigned() == list(range(6)))
    second = Member(broker.bootstrap, group, topic, 40, CONSUMER)
    assert wait_for(lambda: len(second.assigned() or []) == 3 and owned([first, second]) == list(range(6)), 40), \
        (first.lines[-3:], second.lines[-3:])
    third = Member(broker.bootstrap, group, topic, 35, classic)
    members = [first, second, third]
    assert wait_for(lambda: all(len(m.assigned() or []) == 2 for m in members)
                    and owned(members) == list(range(6)), 40), [m.assigned() for m in members]
    produce(broker.bootstrap, topic, 3000, start=3000)
    assert wait_for(lambda: len({r["v"] for m in members for r in m.records()}) >= 6000, 60)
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    d = a.describe_consumer_groups([group])[group].result(30)
    assert d.type == ConsumerGroupType.CONSUMER
    assert len(d.members) == 3
    for m in members:
        m.proc.send_signal(signal.SIGTERM)
        m.wait()
    assert {r["v"] for m in members for r in m.records()} == {str(i) for i in range(6000)}


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_group_membership_survives_a_broker_restart(protocol, sig):
    # The coordinator restores members, generations/epochs and assignments from
    # __consumer_offsets: after the restart the members carry on, nobody rebalances.
    b = StromBroker(FAST_CONSUMER_GROUPS).start()
    try:
        topic = topic_with(b.bootstrap, partitions=4)
        produce(b.bootstrap, topic, 400)
        group = f"restart-{protocol}-{uuid.uuid4().hex[:6]}"
        extra = CONSUMER if protocol == "consumer" else {}
        members = [Member(b.bootstrap, group, topic, 40, extra) for _ in range(2)]
        assert wait_for(lambda: all(len(m.assigned() or []) == 2 for m in members)
                        and owned(members) == list(range(4)), 40), [m.assigned() for m in members]
        assert wait_for(lambda: len({r["v"] for m in members for r in m.records()}) >= 400)
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        before = sorted(m.member_id for m in a.describe_consumer_groups([group])[group].result(30).members)
        changes = [len([l for l in m.lines if "assigned" in l]) for m in members]
        time.sleep(1)  # the membership is written within 250 ms
        b.restart(sig)
        produce(b.bootstrap, topic, 400, start=400)
        assert wait_for(lambda: len({r["v"] for m in members for r in m.records()}) >= 800, 60)
        after = sorted(m.member_id for m in a.describe_consumer_groups([group])[group].result(30).members)
        assert after == before, "the same members, restored"
        assert [len([l for l in m.lines if "assigned" in l]) for m in members] == changes, \
            "no member was reassigned"
        for m in members:
            m.proc.send_signal(signal.SIGTERM)
            m.wait()
    finally:
        b.cleanup()


def test_a_regex_subscription_picks_up_new_topics(broker):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import NewTopic
    prefix = f"rx{uuid.uuid4().hex[:6]}"
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for t in (f"{prefix}-a", f"{prefix}-b", f"other{prefix}"):
        a.create_topics([NewTopic(t, num_partitions=2, replication_factor=1)])[t].result(30)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for t in (f"{prefix}-a", f"{prefix}-b", f"other{prefix}"):
        for i in range(10):
            p.produce(t, value=f"{t}/{i}")
    p.flush(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{prefix}",
                  "group.protocol": "consumer", "auto.offset.reset": "earliest"})
    c.subscribe([f"^{prefix}-.*"])
    got = set()

    def poll_until(n, seconds=30):
        deadline = time.time() + seconds
        while time.time() < deadline and len(got) < n:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.add(m.value().decode())

    poll_until(20)
    assert {v.split("/")[0] for v in got} == {f"{prefix}-a", f"{prefix}-b"}, "only matching topics"
    a.create_topics([NewTopic(f"{prefix}-c", num_partitions=2, replication_factor=1)])[f"{prefix}-c"].result(30)
    for i in range(10):
        p.produce(f"{prefix}-c", value=f"{prefix}-c/{i}")
    p.flush(30)
    poll_until(30)
    assert len(got) == 30 and f"{prefix}-c/9" in got
    c.close()
