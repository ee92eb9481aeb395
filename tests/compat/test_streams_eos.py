"""Kafka Streams (Apache Kafka 4.1.2) exactly-once on a three-node Strom cluster: a word count
(java/StromStreamsWordCount.java; processing.guarantee=exactly_once_v2, commit.interval.ms=100,
internal topics with replication factor 3) is SIGKILLed three times at random points while it
works through 2000 lines and restarted each time on its state dir, then left to finish. Read
read_committed, its output (every update: no record cache) holds for every word the counts 1,
2, 3, ... up to the exact number of times the word occurs in the input, none twice or skipped,
and the application's group has committed the input's end offsets."""
import collections
import os
import random
import signal
import struct
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import StromCluster, wait_for
from kafka_ref import CLASSPATH, JVM_OPTS, ensure_kafka

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "StromStreamsWordCount.java")
LINES = 2000
PARTITIONS = 3
KILLS = 3
MS_PER_LINE = 5
VOCABULARY = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
              "november oscar papa quebec romeo sierra tango").split()


@pytest.fixture(scope="module")
def cluster():
    c = StromCluster(3).start()
    yield c
    c.cleanup()


class App:
    """One run of the word count in its own JVM; its stdout is followed by a thread (the
    latest "processed N" and "counted N", errors; echoed with timings when STREAMS_TRACE is
    set), its stderr (Kafka's WARN logs) goes to `log_path`."""

    def __init__(self, classes, args, log_path):
        self.log_path = log_path
        with open(log_path, "a") as log:
            log.write(f"=== run at {time.strftime('%H:%M:%S')}\n")
            log.flush()
            self.proc = subprocess.Popen(["java", *JVM_OPTS, "-cp", f"{classes}{os.pathsep}{CLASSPATH}",
                                          "StromStreamsWordCount", *args],
                                         stdout=subprocess.PIPE, stderr=log, text=True)
        self.processed = 0
        self.counted = 0
        self.started = time.time()
        self.states = []
        self.out = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.out.append(line)
            if line.startswith("processed "):
                self.processed = int(line.split()[1])
            elif line.startswith("counted "):
                self.counted = int(line.split()[1])
            elif line.startswith("state "):
                self.states.append(line.split()[1])
            if os.environ.get("STREAMS_TRACE"):
                print(f"{time.time() - self.started:6.2f} {line}", flush=True)

    def errors(self):
        return [line for line in self.out if line.startswith("STREAMS ERROR")]

    def exited(self):
        return self.proc.poll() is not None

    def report(self):
        with open(self.log_path) as f:
            err = f.read()[-4000:]
        return "stdout (tail):\n" + "\n".join(self.out[-40:]) + f"\nstderr ({self.log_path}, tail):\n" + err

    def stop(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.reader.join(5)
        return self.proc.returncode


def lines_and_counts(rng):
    lines = [" ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(1, 6))) for _ in range(LINES)]
    return lines, collections.Counter(w for line in lines for w in line.split())


def read_counts(consumer, records, within, decode=True):
    """Appends (partition, offset, word, count) read by `consumer` to `records` until every
    partition is at its end (EOF) once and nothing arrives for a poll, within `within` s
    (without `decode`: (partition, offset, key, value) as read)."""
    at_end = set()
    deadline = time.time() + within
    while time.time() < deadline:
        m = consumer.poll(0.3)
        if m is None:
            if len(at_end) == PARTITIONS:
                return
            continue
        if m.error():
            assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
            at_end.add(m.partition())
            continue
        at_end.discard(m.partition())
        if decode:
            records.append((m.partition(), m.offset(), m.key().decode(), struct.unpack(">q", m.value())[0]))
        else:
            records.append((m.partition(), m.offset(), m.key(), m.value()))


def check_counts(records, expected):
    """Problems with the word count output `records` (in read order) against `expected`: with
    no record cache every occurrence of a word is one output, so a word's counts must be 1, 2,
    3, ... up to its number of occurrences. A count not one more than the word's previous one
    (a decrease or a repeat: processed twice; a skip: an update lost), a final count not the
    expected one, unknown words. Empty if none."""
    problems, last = [], {}
    for p, offset, word, count in records:
        prev = last.get(word, 0)
        if count != prev + 1:
            what = "goes back" if count <= prev else "skips"
            problems.append(f"{word}: count {what} to {count} after {prev} (partition {p} offset {offset})")
        last[word] = count
    wrong = {w: (last.get(w), n) for w, n in expected.items() if last.get(w) != n}
    if wrong:
        problems.append(f"final counts (got, expected) wrong for {len(wrong)} words: {wrong}")
    unknown = set(last) - set(expected)
    if unknown:
        problems.append(f"unknown words: {sorted(unknown)}")
    return problems[:50]


def output_consumer(bootstrap, topic, isolation):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex[:6]}",
                  "isolation.level": isolation, "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    return c


def test_streams_word_count_exactly_once_through_crashes(cluster, tmp_path):
    started = time.time()
    ensure_kafka()
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-nowarn", "-d", str(classes), "-cp", CLASSPATH, SRC], check=True, timeout=300)

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    wait_for("three live brokers", lambda: len(admin.list_topics(timeout=10).brokers) == 3)
    suffix = uuid.uuid4().hex[:6]
    src, dst, app_id = f"wc-lines-{suffix}", f"wc-counts-{suffix}", f"wordcount-{suffix}"
    for f in admin.create_topics([NewTopic(src, PARTITIONS, 3), NewTopic(dst, PARTITIONS, 3)]).values():
        f.result(30)

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}")
    lines, expected = lines_and_counts(rng)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    for i, line in enumerate(lines):
        p.produce(src, key=str(i), value=line)
    assert p.flush(30) == 0
    del p

    args = [cluster.bootstrap, app_id, src, dst, str(tmp_path / "state"), str(MS_PER_LINE)]
    log_path = str(tmp_path / "streams.log")
    app = None
    try:
        for run in range(KILLS):
            target = rng.randint(50, 350)
            t0 = time.time()
            app = App(classes, args, log_path)
            wait_for(f"run {run + 1} processing {target} lines",
                     lambda: app.processed >= target or app.exited(), within=60)
            assert not app.exited() and not app.errors(), app.report()
            app.stop(signal.SIGKILL)
            print(f"run {run + 1}: killed after {app.processed} lines, {time.time() - t0:.1f} s")

        # The last run finishes: wait until the output (read_committed) has every final count.
        t0 = time.time()
        app = App(classes, args, log_path)
        watcher = output_consumer(cluster.bootstrap, dst, "read_committed")
        seen, last = [], {}

        def finished():
            assert not app.exited() and not app.errors(), app.report()
            read_counts(watcher, seen, within=2)
            last.update((w, n) for _, _, w, n in seen)
            over = {w: (n, expected[w]) for w, n in last.items() if n > expected.get(w, 0)}
            assert not over, f"counts (got, expected) above the exact ones, read_committed: {over}"
            return last == dict(expected)

        try:
            wait_for("the final counts in the output", finished, within=60)
        except AssertionError as e:
            raise AssertionError(f"{e}; got {last}, expected {dict(expected)}\n{app.report()}") from None
        finally:
            watcher.close()
        app.stop(signal.SIGTERM)
        assert app.errors() == [], app.report()
        print(f"last run: {app.processed} lines, {time.time() - t0:.1f} s")
        app = None
    finally:
        if app is not None:
            app.stop(signal.SIGKILL)

    def read_all(topic, isolation, decode=True):
        c = output_consumer(cluster.bootstrap, topic, isolation)
        records = []
        read_counts(c, records, within=30, decode=decode)
        c.close()
        return records

    # The kills left records in open transactions, aborted since: on the repartition topic
    # (written as lines are processed) read_uncommitted reads more than read_committed.
    repartition = f"{app_id}-word-counts-repartition"
    aborted = {topic: len(read_all(topic, "read_uncommitted", False)) - len(read_all(topic, "read_committed", False))
               for topic in (repartition, dst)}
    print(f"records in aborted transactions: {aborted}")
    assert aborted[repartition] > 0, "no kill came while a transaction had records written"

    # The whole output, read_committed from the start: every count of every word once, in order.
    committed = read_all(dst, "read_committed")
    problems = check_counts(committed, expected)
    assert problems == [] and len(committed) == sum(expected.values()), (len(committed), problems)

    # The application's group committed the input's end offsets (with its last transaction).
    g = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": app_id, "isolation.level": "read_committed"})
    tps = [TopicPartition(src, p) for p in range(PARTITIONS)]
    offsets = [tp.offset for tp in g.committed(tps, timeout=30)]
    ends = [g.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
    g.close()
    assert offsets == ends and sum(ends) == LINES, (offsets, ends)
    print(f"total {time.time() - started:.1f} s")
