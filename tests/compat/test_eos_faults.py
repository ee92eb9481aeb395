"""Exactly-once under faults: a consume-transform-produce processor (eos_processor.py, its
own process: a read_committed consumer in group eos-g and a transactional producer with a
fixed transactional.id, the group's offsets committed in its transactions) turns every input
record into one output record carrying the input's partition and offset, and now and then
aborts a transaction on purpose (outputs written, offsets sent) and rewinds. Whatever is
killed meanwhile, a read_committed consumer of the output reads each input's output exactly
once, per partition in input order, and the group's committed offsets end at the input's ends.

A: one broker; the processor itself is SIGKILLed at random moments (often inside an open
transaction whose outputs are already written) and restarted, the new instance fencing its
zombie and aborting its transaction. B: three nodes, topics with replication factor 3 and
min.insync.replicas 2, inputs written all along; SIGKILLed and restarted in turn: the leader
of an output partition, the processor's transaction coordinator (the leader of the
__transaction_state partition its transactional.id hashes to) and its group's coordinator.
(The processor closes idle connections after 5 s: the workaround for a librdkafka hang when
the group coordinator drops out of the metadata, see eos_processor.py.)

On a failure the brokers' directories (broker.log, data but the indexes), the processor's
logs (with its stack if it was still running) and the records read are kept under the
temporary directory the failure names (EOS_KEEP=1: always). EOS_SEED fixes the random kill
schedule of A (the seed used is printed); EOS_DEBUG passes librdkafka debug contexts to B's
processor (e.g. "eos,protocol")."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import StromBroker, StromCluster, wait_for
from eos_processor import output_value
from test_transactions import check_exactly, read

PROCESSOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "eos_processor.py")
GROUP = "eos-g"
PARTITIONS = 3
TXN_TOPIC = "__transaction_state"


class Work:
    """The test's temporary directory and the processor instances it ran."""

    def __init__(self, request):
        self.dir = tempfile.mkdtemp(prefix="strom-eos-faults-")
        self.request = request
        self.failed_before = request.session.testsfailed
        self.processors = []

    def failed(self):
        return self.request.session.testsfailed > self.failed_before or os.environ.get("EOS_KEEP") == "1"

    def path(self, name):
        return os.path.join(self.dir, name)

    def keep_broker(self, name, broker):
        if self.failed():
            # Not the offset and time indexes: preallocated sparse files (10 MB each, a
            # hundred of them with the internal topics) that a copy would write out in full.
            shutil.copytree(broker.dir, self.path(name), ignore=shutil.ignore_patterns("*.index", "*.timeindex"),
                            ignore_dangling_symlinks=True, dirs_exist_ok=True)

    def stop_processors(self):
        for p in self.processors:
            p.kill(stack=self.failed())


@pytest.fixture
def work(request):
    w = Work(request)
    yield w
    w.stop_processors()
    if w.failed():
        sys.stderr.write(f"\nbroker and processor logs kept in {w.dir}\n")
    else:
        shutil.rmtree(w.dir, ignore_errors=True)


@pytest.fixture
def eos_broker(work):
    b = StromBroker().start()
    yield b
    work.stop_processors()
    work.keep_broker("broker", b)
    b.cleanup()


@pytest.fixture
def eos_cluster(work):
    c = StromCluster(3).start()
    yield c
    work.stop_processors()
    for i, node in enumerate(c.nodes):
        work.keep_broker(f"node{i + 1}", node)
    c.cleanup()


class Processor:
    """Runs of eos_processor.py with one configuration, each with its own log."""

    def __init__(self, work, **cfg):
        self.work, self.cfg = work, cfg
        self.runs = []  # (log path, Popen)
        work.processors.append(self)

    def start(self):
        path = self.work.path(f"processor-{len(self.runs)}.log")
        with open(path, "w") as log:
            proc = subprocess.Popen([sys.executable, PROCESSOR, json.dumps(self.cfg)],
                                    stdout=log, stderr=subprocess.STDOUT)
        self.runs.append((path, proc))
        return self

    @property
    def proc(self):
        return self.runs[-1][1]

    def log(self, run=-1):
        with open(self.runs[run][0]) as f:
            return f.read()

    def total(self, run=-1):
        """Inputs the run has committed outputs for."""
        found = re.findall(r"committed n=\d+ total=(\d+)", self.log(run))
        return int(found[-1]) if found else 0

    def assigned(self, run=-1):
        return re.search(r"assigned \[\d", self.log(run)) is not None

    def kill(self, stack=False):
        for _, proc in self.runs:
            if stack and proc.poll() is None:
                proc.send_signal(signal.SIGUSR1)  # eos_processor.py writes its stack to its log
                time.sleep(0.5)
        for _, proc in self.runs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)

    def wait(self, within):
        try:
            return self.proc.wait(timeout=max(within, 1))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the processor did not finish within {within:.0f} s; its log:\n"
                                 + self.log()[-3000:])

    def aborts(self):
        """Transactions aborted after an error, and on purpose, over all runs."""
        logs = [self.log(i) for i in range(len(self.runs))]
        return sum(log.count("aborting after") for log in logs), sum(log.count("aborting on purpose") for log in logs)

    def lines(self, word):
        return [line for i in range(len(self.runs)) for line in self.log(i).splitlines() if word in line]

    def slow(self):
        """The processor's lines about transactional calls that took over 5 s, and the errors
        it aborted a transaction after."""
        return self.lines(" slow: ") + self.lines(" aborting after ")


def java_hash(s):
    h = 0
    for i in range(0, len(s.encode("utf-16-le")), 2):
        unit = int.from_bytes(s.encode("utf-16-le")[i:i + 2], "little")
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def txn_partition(tid, partitions=50):
    """The __transaction_state partition of `tid` (Kafka's Utils.abs(hashCode) % n)."""
    h = java_hash(tid)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def leaders(admin, topic):
    md = admin.list_topics(topic, timeout=10)
    return {p.id: (p.leader, sorted(p.isrs), sorted(p.replicas)) for p in md.topics[topic].partitions.values()}


def fully_in_sync(admin, topics):
    def check():
        try:
            return all(leader >= 0 and isr == replicas
                       for t in topics for leader, isr, replicas in leaders(admin, t).values())
        except Exception:
            return False
    return check


def create_topics(admin, names, replication, config=None):
    fs = admin.create_topics([NewTopic(n, PARTITIONS, replication, config=config or {}) for n in names])
    for f in fs.values():
        f.result(30)


def committed_offsets(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "isolation.level": "read_committed",
                  "enable.auto.commit": False})
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        offsets = [tp.offset for tp in c.committed(tps, timeout=30)]
        ends = [c.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in tps]
        return offsets, ends
    finally:
        c.close()


def check_outputs(work, bootstrap, src, dst, within=60):
    """Problems with the committed output against the input log (one output per input, in
    input order per partition, each in the input's partition), and a line about what
    read_uncommitted sees besides (outputs of aborted transactions)."""
    inputs = read(bootstrap, src, PARTITIONS, "read_uncommitted", 0, within=within)
    expected = [output_value(p, o, v) for p, o, v in sorted(inputs)]
    got = read(bootstrap, dst, PARTITIONS, "read_committed", len(expected), within=within)
    uncommitted = read(bootstrap, dst, PARTITIONS, "read_uncommitted", len(expected), within=within)
    for name, records in [("input", inputs), ("output-read-committed", got),
                          ("output-read-uncommitted", uncommitted)]:
        with open(work.path(name + ".txt"), "w") as f:
            f.writelines(f"{p} {o} {v}\n" for p, o, v in records)

    problems = check_exactly(got, expected, sent=expected)
    wrong = [(p, o, v) for p, o, v in got if not v.startswith(f"{p}:")]
    if wrong:
        problems.append(f"outputs in another partition than their input: {len(wrong)}, e.g. {wrong[:5]}")
    where = {}
    for p, o, v in got:
        where.setdefault(v, []).append((p, o))
    dups = {v: at for v, at in where.items() if len(at) > 1}
    if dups:
        problems.append(f"duplicated outputs at (partition, offset): {sorted(dups.items())[:5]}")
    if problems:
        problems.append(f"{len(inputs)} inputs, {len(got)} committed outputs read; records in {work.dir}")

    counts = {}
    for _, _, v in uncommitted:
        counts[v] = counts.get(v, 0) + 1
    note = (f"{len(inputs)} inputs; read_committed: {len(got)} outputs; read_uncommitted: "
            f"{len(uncommitted)} records, {len(uncommitted) - len(got)} of them from aborted transactions, "
            f"{sum(1 for n in counts.values() if n > 1)} inputs with more than one output written")
    return problems, note, len(inputs)


def produce_inputs(bootstrap, topic, n):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, key=str(i), value=f"in-{i}", partition=i % PARTITIONS)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def test_a_killed_processor_restarts_without_loss_or_duplicates(eos_broker, work):
    """3000 inputs over three partitions; the processor (aborting every 7th transaction on
    purpose) is SIGKILLed 3-5 times, each time 0.3-2 s after it got its partitions, and
    restarted; the last run finishes. Each input's output is read once (read_committed), in
    input order, and the group's committed offsets are the input's ends."""
    deadline = time.time() + 180
    seed = int(os.environ.get("EOS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"EOS_SEED={seed}")
    b = eos_broker
    suffix = uuid.uuid4().hex[:6]
    src, dst = f"eos-a-in-{suffix}", f"eos-a-out-{suffix}"
    create_topics(AdminClient({"bootstrap.servers": b.bootstrap}), [src, dst], 1)
    produce_inputs(b.bootstrap, src, 3000)
    marker = work.path("input-complete")
    open(marker, "w").close()

    proc = Processor(work, bootstrap=b.bootstrap, input=src, output=dst, partitions=PARTITIONS, group=GROUP,
                     transactional_id="eos-a-processor", marker=marker, batch=20, pause=0.1, idle=2.0,
                     abort_every=7)
    # At most 20 inputs per 0.1 s: the killed runs (2 s at most each) cannot finish the work.
    kills = rng.randint(3, 5)
    schedule = []
    for k in range(kills):
        proc.start()
        wait_for(f"run {k} of the processor assigned its partitions", proc.assigned,
                 within=min(60, deadline - time.time()))
        delay = rng.uniform(0.3, 2.0)
        time.sleep(delay)
        assert proc.proc.poll() is None, f"run {k} ended before its kill:\n{proc.log()[-3000:]}"
        proc.kill()
        schedule.append((round(delay, 2), proc.total()))
    proc.start()
    rc = proc.wait(deadline - time.time())
    final = proc.total()
    print(f"kills (delay after assignment, inputs committed by the run): {schedule}; "
          f"the last run committed {final}; aborts (after errors, on purpose): {proc.aborts()}; "
          f"slow calls and aborts after errors: {proc.slow()}")
    assert rc == 0, f"the last run exited with {rc}:\n{proc.log()[-3000:]}"
    assert final > 0, "every kill came after the work was done"

    problems, note, n = check_outputs(work, b.bootstrap, src, dst)
    on_purpose = sum(int(n) for n in re.findall(r"aborting on purpose n=(\d+)", "\n".join(proc.lines("on purpose"))))
    print(f"{note}; {on_purpose} outputs were aborted on purpose, the others by the kills")
    assert problems == [], "\n".join(problems)
    assert n == 3000
    offsets, ends = committed_offsets(b.bootstrap, src)
    assert offsets == ends and sum(ends) == 3000, (offsets, ends)


class Feeder(threading.Thread):
    """Writes inputs, about `rate` a second over the partitions in turn (idempotent,
    acks=all), until stopped; records the errors it is told about."""

    def __init__(self, bootstrap, topic, rate=100):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.stopping = threading.Event()
        self.errors, self.sent, self.acked = [], 0, 0

    def run(self):
        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 5})
        while not self.stopping.is_set():
            p.produce(self.topic, key=str(self.sent), value=f"in-{self.sent}", partition=self.sent % PARTITIONS,
                      on_delivery=self.delivered)
            self.sent += 1
            p.poll(0)
            time.sleep(1 / self.rate)
        if p.flush(60) != 0:
            self.errors.append("inputs not acknowledged within 60 s")

    def delivered(self, err, _msg):
        if err is None:
            self.acked += 1
        else:
            self.errors.append(f"delivery: {err}")


def test_b_exactly_once_through_leader_and_coordinator_failover(eos_cluster, work):
    """Three nodes; inputs written all along; the processor runs throughout while, in turn,
    the leader of an output partition, the transaction coordinator of its transactional.id
    and its group's coordinator are SIGKILLed, kept down 4 s and restarted (each back in
    sync, and the processor past more inputs, before the next); the processor aborts every
    11th transaction on purpose. The processor never fails; each input's output is read once
    (read_committed), in input order, and the group's committed offsets are the input's
    ends."""
    deadline = time.time() + 180
    left = lambda cap: max(1, min(cap, deadline - time.time()))
    c = eos_cluster
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    wait_for("three live brokers", lambda: len(admin.list_topics(timeout=10).brokers) == 3, within=left(30))
    src, dst = "eos-b-in", "eos-b-out"
    create_topics(admin, [src, dst], 3, {"min.insync.replicas": "2"})
    wait_for("the topics in sync", fully_in_sync(admin, [src, dst]), within=left(30))

    tid = "eos-b-processor"
    marker = work.path("input-complete")
    feeder = Feeder(c.bootstrap, src)
    feeder.start()
    proc = Processor(work, bootstrap=c.bootstrap, input=src, output=dst, partitions=PARTITIONS, group=GROUP,
                     transactional_id=tid, marker=marker, batch=10, pause=0.02, idle=3.0, abort_every=11,
                     debug=os.environ.get("EOS_DEBUG", "")).start()
    wait_for("the processor's first commits", lambda: proc.total() > 50, within=left(60))

    internal = [TXN_TOPIC, "__consumer_offsets"]
    wait_for("the internal topics in sync", fully_in_sync(admin, internal), within=left(60))

    def txn_coordinator():
        return leaders(admin, TXN_TOPIC)[txn_partition(tid)][0]

    def output_leader():
        coordinator = txn_coordinator()
        ls = leaders(admin, dst)
        others = [leader for leader, _, _ in ls.values() if leader != coordinator]
        return others[0] if others else ls[0][0]

    def group_coordinator():
        return admin.describe_consumer_groups([GROUP])[GROUP].result(10).coordinator.id

    phases = [("the leader of an output partition", output_leader),
              ("the transaction coordinator", txn_coordinator),
              ("the group coordinator", group_coordinator)]
    history = []
    for what, victim_of in phases:
        victim = victim_of()
        before, killed_at = proc.total(), time.time()
        node = c.node(victim)
        node.stop(signal.SIGKILL)
        time.sleep(4)
        during = proc.total()
        node.start()
        wait_for(f"the cluster in sync after {what} (node {victim}) came back",
                 fully_in_sync(admin, [src, dst] + internal), within=left(60))
        synced_at = time.time()
        wait_for(f"the processor past more inputs after {what} came back",
                 lambda: proc.total() > during + 50 or proc.proc.poll() is not None, within=left(60))
        history.append(f"{what}: node {victim} killed at {time.strftime('%H:%M:%S', time.gmtime(killed_at))} UTC"
                       f" with {before} inputs committed, {during} after 4 s down, in sync again after"
                       f" {synced_at - killed_at:.1f} s, {proc.total()} after {time.time() - killed_at:.1f} s")
        assert proc.proc.poll() is None, f"the processor ended after {what} was killed:\n{proc.log()[-3000:]}"

    feeder.stopping.set()
    feeder.join(left(60))
    assert not feeder.is_alive() and feeder.errors == [], feeder.errors
    open(marker, "w").close()
    rc = proc.wait(left(120))
    print("\n".join(history))
    print(f"inputs sent {feeder.sent}; processor total {proc.total()}; aborts (after errors, on purpose): "
          f"{proc.aborts()}; slow calls and aborts after errors: {proc.slow()}")
    assert rc == 0, f"the processor exited with {rc}:\n{proc.log()[-3000:]}"

    problems, note, n = check_outputs(work, c.bootstrap, src, dst)
    print(note)
    assert problems == [], "\n".join(problems)
    assert n == feeder.acked == feeder.sent
    offsets, ends = committed_offsets(c.bootstrap, src)
    assert offsets == ends and sum(ends) == n, (offsets, ends)
