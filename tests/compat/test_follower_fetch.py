"""Fetching from the closest replica (KIP-392) with a real client: on three brokers in three
racks with Kafka's `RackAwareReplicaSelector`, a confluent-kafka consumer whose
`client.rack` is a follower's is sent there by the leader (`PreferredReadReplica`) and reads
every record from it, in order; one in the leader's rack reads from the leader."""
import json
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import StromCluster, wait_for

SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
TOPIC, RECORDS = "near", 500


@pytest.fixture(scope="module")
def racks():
    c = StromCluster(3, extra={"replica.selector.class": SELECTOR})
    for i, node in enumerate(c.nodes):
        node.extra["broker.rack"] = f"rack{i + 1}"
    c.start()
    yield c
    c.cleanup()


def partition0(admin):
    p = admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions[0]
    return p.leader, sorted(p.isrs)


def consume_all(bootstrap, rack):
    """Reads partition 0 from the start with `client.rack` = `rack`: the values, and the
    brokers librdkafka's statistics say it fetched from."""
    fetched_from = set()

    def stats(raw):
        p = json.loads(raw)["topics"].get(TOPIC, {}).get("partitions", {}).get("0")
        if p and p["broker"] >= 0:
            fetched_from.add(p["broker"])

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"near-{rack}",
                  "client.rack": rack, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "statistics.interval.ms": 100,
                  "stats_cb": stats})
    c.subscribe([TOPIC])
    values = []
    deadline = time.time() + 60
    while len(values) < RECORDS and time.time() < deadline:
        for m in c.consume(100, timeout=0.5):
            assert not m.error(), m.error()
            values.append(m.value().decode())
    end = time.time() + 0.5
    while time.time() < end:
        c.poll(0.1)
    c.close()
    return values, fetched_from


def test_a_consumer_reads_from_the_replica_in_its_rack(racks):
    admin = AdminClient({"bootstrap.servers": racks.bootstrap})
    wait_for("three live brokers", lambda: len(admin.list_topics(timeout=10).brokers) == 3)
    admin.create_topics([NewTopic(TOPIC, 1, 3)])[TOPIC].result(30)
    wait_for("all three in sync", lambda: partition0(admin)[1] == [1, 2, 3] and partition0(admin)[0] >= 0)
    leader = partition0(admin)[0]
    follower = next(b for b in (1, 2, 3) if b != leader)
    producer = Producer({"bootstrap.servers": racks.bootstrap, "acks": "all",
                         "enable.idempotence": True})
    sent = [str(i) for i in range(RECORDS)]
    for v in sent:
        producer.produce(TOPIC, v.encode(), partition=0)
    assert producer.flush(30) == 0

    values, fetched_from = consume_all(racks.bootstrap, f"rack{follower}")
    assert values == sent
    assert follower in fetched_from, f"leader {leader}, fetched from {fetched_from}"

    values, fetched_from = consume_all(racks.bootstrap, f"rack{leader}")
    assert values == sent
    assert fetched_from == {leader}, f"leader {leader}, fetched from {fetched_from}"
