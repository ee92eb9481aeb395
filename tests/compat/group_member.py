"""A consumer-group member in its own process (so tests can SIGKILL it): consumes a topic in
a group, prints each record it processed and commits after processing (at-least-once)."""
import json
import sys
import time

from confluent_kafka import Consumer

bootstrap, group, topic, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
extra = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}


conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, **extra}
if extra.get("group.protocol") != "consumer":
    # With the consumer protocol (KIP-848) the broker sets these; the client refuses them.
    conf = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, **conf}
c = Consumer(conf)
c.subscribe([topic])
deadline = time.time() + seconds
current = None
while time.time() < deadline:
    m = c.poll(0.2)
    # The whole current assignment whenever it changes (with cooperative rebalancing the
    # assign callbacks only carry increments).
    now = sorted(p.partition for p in c.assignment())
    if now != current and (now or current is not None):
        current = now
        print(json.dumps({"assigned": now}), flush=True)
    if m is None or m.error():
        continue
    print(json.dumps({"p": m.partition(), "o": m.offset(), "v": m.value().decode()}), flush=True)
    try:
        c.commit(m, asynchronous=False)
    except Exception as e:  # a commit refused during a rebalance is retried by redelivery
        print(json.dumps({"commit_error": str(e)}), flush=True)
c.close()
