"""A consume-transform-produce processor with exactly-once semantics, run as its own process
by test_eos_faults.py (so that the tests can SIGKILL it): a confluent-kafka consumer in a
group (read_committed, no auto commit) and a transactional producer with a fixed
transactional.id, so that a restarted instance fences its killed predecessor and aborts the
transaction it left open.

Each transaction: up to `batch` inputs are consumed, one output per input is produced to the
output topic's partition of the same number, with the value
"<input partition>:<input offset>:<transform(input value)>", the outputs are flushed, the
processor pauses `pause` seconds (so that a kill often lands inside an open transaction with
its outputs written), the input positions go into the transaction
(send_offsets_to_transaction) and it commits; every `abort_every`-th transaction it aborts
instead, and rewinds as below. An abortable error aborts the transaction and rewinds the
consumer to the group's committed offsets (as confluent-kafka's eos-transactions.py example
does); retriable errors retry the call; a fatal error ends the process with exit code 2.

The processor exits with 0 once the file `marker` exists (the input is complete), no input
came for `idle` seconds, every input partition is assigned to it and the group's committed
offsets are the input partitions' end offsets.

Usage: python eos_processor.py '<json config>'; keys: bootstrap, input, output, partitions,
group, transactional_id, marker, and optionally batch, pause, idle, abort_every, debug
(librdkafka debug contexts for the producer, e.g. "eos,protocol": its log goes to stderr).
Progress on stdout, one line per event ("initialised", "assigned ...", "committed n=...
total=...", "aborting on purpose ...", "aborting after <error>", "rewound to ...", "slow: ..."
for a call over 5 s, "done total=..."), flushed at once so that the tests can follow it; a
call stuck for 45 s, or SIGUSR1, writes the Python stack to stderr."""
import faulthandler
import json
import os
import signal
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition


def transform(value):
    return value[::-1].upper()


def output_value(partition, offset, value):
    return f"{partition}:{offset}:{transform(value)}"


def say(*words):
    print(f"{time.time():.3f}", *words, flush=True)


class Fatal(Exception):
    pass


def main():
    faulthandler.register(signal.SIGUSR1)  # the tests ask for the stack of a stuck run
    cfg = json.loads(sys.argv[1])
    batch, pause, idle = cfg.get("batch", 10), cfg.get("pause", 0.0), cfg.get("idle", 3.0)
    src, dst, partitions = cfg["input"], cfg["output"], cfg["partitions"]

    producer = Producer({"bootstrap.servers": cfg["bootstrap"], "transactional.id": cfg["transactional_id"],
                         "transaction.timeout.ms": 30000, "linger.ms": 5,
                         # librdkafka 2.10+ decommissions a broker missing from a metadata
                         # response (as a fenced, killed broker is, in Kafka and in Strom); if
                         # it was the group coordinator, send_offsets_to_transaction waits for it
                         # until some broker connection of the producer changes state, past its
                         # own timeout (librdkafka issues 5511 and 5456, open). Closing idle
                         # connections makes such a change within seconds when nothing moves.
                         "connections.max.idle.ms": 5000,
                         "error_cb": lambda e: say("producer error", e),
                         **({"debug": cfg["debug"]} if cfg.get("debug") else {})})
    # Before the consumer fetches its committed offsets: the killed predecessor's open
    # transaction (and its pending offsets) is aborted by this.
    retrying("init_transactions", lambda: producer.init_transactions(60))
    say("initialised")

    consumer = Consumer({"bootstrap.servers": cfg["bootstrap"], "group.id": cfg["group"],
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 500, "error_cb": lambda e: say("consumer error", e)})
    consumer.subscribe([src], on_assign=lambda c, ps: say("assigned", sorted(p.partition for p in ps)),
                       on_revoke=lambda c, ps: say("revoked", sorted(p.partition for p in ps)))

    delivery_errors = []

    def delivered(err, msg):
        if err is not None:
            delivery_errors.append(str(err))

    total, transactions, last_input, last_check = 0, 0, time.time(), 0.0
    abort_every = cfg.get("abort_every", 0)
    while True:
        msgs = consumer.consume(batch, timeout=0.5)
        for m in msgs:
            if m.error():
                say("consume error", m.error())
                if m.error().fatal():
                    raise Fatal(f"consumer: {m.error()}")
        msgs = [m for m in msgs if not m.error()]
        if not msgs:
            now = time.time()
            if os.path.exists(cfg["marker"]) and now - last_input >= idle and now - last_check >= 1:
                last_check = now
                if caught_up(consumer, src, partitions):
                    say(f"done total={total}")
                    consumer.close()
                    return
            continue
        last_input = time.time()

        try:
            producer.begin_transaction()
            delivery_errors.clear()
            for m in msgs:
                producer.produce(dst, key=m.key(), partition=m.partition(), on_delivery=delivered,
                                 value=output_value(m.partition(), m.offset(), m.value().decode()))
            flushing = time.time()
            left = producer.flush(60)
            if left or time.time() - flushing > 5:
                say(f"slow: flush took {time.time() - flushing:.1f} s, {left} outputs left")
            if pause:
                time.sleep(pause)
            positions = {}
            for m in msgs:
                positions[m.partition()] = max(positions.get(m.partition(), 0), m.offset() + 1)
            offsets = [TopicPartition(src, p, o) for p, o in sorted(positions.items())]
            retrying("send_offsets_to_transaction", lambda: producer.send_offsets_to_transaction(
                offsets, consumer.consumer_group_metadata(), 60))
            transactions += 1
            if abort_every and transactions % abort_every == 0:
                # Outputs written and offsets sent, then aborted: neither may count.
                say(f"aborting on purpose n={len(msgs)} offsets={sorted(positions.items())}")
                retrying("abort_transaction", lambda: producer.abort_transaction(60))
                rewind(consumer)
                continue
            retrying("commit_transaction", lambda: producer.commit_transaction(60))
        except KafkaException as e:
            err = e.args[0]
            if not err.txn_requires_abort():
                raise Fatal(f"{err} (fatal={err.fatal()}, retriable={err.retriable()})")
            say("aborting after", err, "delivery errors:", delivery_errors[:3])
            retrying("abort_transaction", lambda: producer.abort_transaction(60))
            rewind(consumer)
            continue
        total += len(msgs)
        say(f"committed n={len(msgs)} total={total} offsets={sorted(positions.items())}")


def retrying(what, call, within=120):
    """`call()`, again while it raises a retriable error, for at most `within` seconds."""
    started = time.time()
    deadline = started + within
    while True:
        try:
            # A call stuck for 45 s writes the stack to the log (the evidence of a hang).
            faulthandler.dump_traceback_later(45)
            try:
                return call()
            finally:
                faulthandler.cancel_dump_traceback_later()
                if time.time() - started > 5:
                    say(f"slow: {what} took {time.time() - started:.1f} s")
        except KafkaException as e:
            err = e.args[0]
            if not err.retriable() or err.txn_requires_abort() or err.fatal() or time.time() > deadline:
                raise
            say(f"retrying {what} after", err)
            time.sleep(0.2)


def rewind(consumer):
    """Seeks every assigned partition back to the group's committed offset (the start when
    there is none), dropping what was consumed since."""
    assignment = consumer.assignment()
    if not assignment:
        return
    committed = retrying("committed", lambda: consumer.committed(assignment, timeout=60))
    for tp in committed:
        if tp.offset < 0:
            tp.offset = OFFSET_BEGINNING
        retrying("seek", lambda: consumer.seek(tp))
    say("rewound to", sorted((tp.partition, tp.offset) for tp in committed))


def caught_up(consumer, src, partitions):
    """Whether this consumer has every input partition and the group's committed offsets are
    their end offsets."""
    assignment = consumer.assignment()
    if len(assignment) != partitions:
        return False
    try:
        committed = consumer.committed(assignment, timeout=10)
        for tp in committed:
            _, high = consumer.get_watermark_offsets(TopicPartition(src, tp.partition), timeout=10, cached=False)
            if tp.offset < high:
                return False
    except KafkaException as e:
        say("caught_up check failed", e)
        return False
    return True


if __name__ == "__main__":
    try:
        main()
    except Fatal as e:
        say("fatal", e)
        sys.exit(2)
    except KafkaException as e:
        say("fatal kafka exception", e)
        sys.exit(2)
