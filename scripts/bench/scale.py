"""Scale benchmark (scripts/bench-scale, BENCHMARKS.md "Scale"): TOPICS x PER partitions
created on one broker (CreateTopics, 20 topics a request); the time, RSS and descriptors;
records produced to and consumed from a random 1% of the partitions; produce latency with
and without a client asking for the metadata of every topic in a loop; then a restart after
a clean shutdown: the time until it listens and serves Metadata. With `kafka` after the
counts, the same against Apache Kafka 4.1.2 (tests/compat/kafka_ref.py's broker and JVM
flags); the CLI timings still use Strom's `strom topics` tool, against Kafka."""
import os, random, re, subprocess, sys, tempfile, time, shutil
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

STROM, TOPICS, PER = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
KAFKA = len(sys.argv) > 4 and sys.argv[4] == "kafka"
kafka = None

def start(d):
    global kafka
    if KAFKA:
        if kafka is None:
            sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "compat"))
            import kafka_ref
            kafka = kafka_ref.KafkaBroker()
        kafka.start(timeout=1800)
        return kafka.proc, kafka.bootstrap, kafka.start_seconds
    p = subprocess.Popen([STROM, "broker", "--override", f"log.dirs={d}/data", "--override",
                          "listeners=PLAINTEXT://127.0.0.1:0"], stdout=subprocess.PIPE,
                         stderr=open(f"{d}/broker.log", "a"), text=True)
    t0 = time.time()
    for line in p.stdout:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return p, f"127.0.0.1:{m.group(1)}", time.time() - t0
    raise RuntimeError("no start")

def rss_mb(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1]) / 1024

def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))

if KAFKA:
    # Kafka holds a descriptor per segment: it gets the most the machine allows.
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
d = tempfile.mkdtemp(prefix="scale-probe-")
p, bootstrap, _ = start(d)
base_rss = rss_mb(p.pid)
admin = AdminClient({"bootstrap.servers": bootstrap})
t0 = time.time()
for batch in range(0, TOPICS, 20):
    fs = admin.create_topics([NewTopic(f"t{i}", PER, 1) for i in range(batch, min(TOPICS, batch + 20))],
                             request_timeout=600)
    for f in fs.values():
        f.result(600)
created = time.time() - t0
print(f"{TOPICS * PER} partitions created in {created:.1f} s (CreateTopics answered)", flush=True)
# Kafka answers CreateTopics once its controller has committed the topics and makes the
# logs afterwards: the creation ends when every partition's directory exists.
data = kafka.data_dir if KAFKA else f"{d}/data"
part_dir = re.compile(r"t\d+-\d+$")
while sum(1 for n in os.listdir(data) if part_dir.match(n)) < TOPICS * PER and time.time() - t0 < 1800:
    time.sleep(0.2)
print(f"{TOPICS * PER} partitions' logs on disk after {time.time() - t0:.1f} s; RSS {rss_mb(p.pid):.0f} MB "
      f"(idle broker {base_rss:.0f} MB); {fds(p.pid)} descriptors", flush=True)
random.seed(13)
sample = random.sample([(f"t{t}", i) for t in range(TOPICS) for i in range(PER)], max(1, TOPICS * PER // 100))
PER_PARTITION = 100
prod = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
t0 = time.time()
for _ in range(PER_PARTITION):
    for topic, i in sample:
        while True:
            try:
                prod.produce(topic, b"v" * 100, partition=i)
                break
            except BufferError:
                prod.poll(0.1)
    prod.poll(0)
prod.flush(300)
produced = len(sample) * PER_PARTITION
print(f"produced {produced} records to {len(sample)} random partitions in {time.time() - t0:.1f} s", flush=True)
cons = Consumer({"bootstrap.servers": bootstrap, "group.id": "scale", "enable.auto.commit": False})
cons.assign([TopicPartition(topic, i, 0) for topic, i in sample])
t0, got = time.time(), 0
while got < produced and time.time() - t0 < 300:
    got += sum(1 for m in cons.consume(1000, 1) if not m.error())
cons.close()
print(f"consumed {got} of them back in {time.time() - t0:.1f} s", flush=True)


def latencies(seconds):
    lat = []
    p2 = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    # 100 of the sampled partitions (librdkafka's own cost grows with the partitions one
    # producer writes to: 1.1 ms p50 over 100, 13 ms over 1,000, against the same broker),
    # warmed up so that no send waits for a metadata lookup.
    few = sample[:100]
    for topic, i in few:
        p2.produce(topic, b"w", partition=i)
    p2.flush(120)
    end = time.time() + seconds
    while time.time() < end:
        topic, i = random.choice(few)
        sent = time.time()
        p2.produce(topic, b"x", partition=i, on_delivery=lambda e, m, sent=sent: lat.append(time.time() - sent))
        p2.poll(0.01)
    p2.flush(30)
    lat.sort()
    return lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000


LISTER = """
import sys, time
from confluent_kafka.admin import AdminClient
a = AdminClient({"bootstrap.servers": sys.argv[1]})
n, spent, end = 0, 0.0, time.time() + float(sys.argv[2])
while time.time() < end:
    t = time.time()
    a.list_topics(timeout=120)
    n, spent = n + 1, spent + time.time() - t
print(n, spent / max(1, n))
"""
quiet = latencies(10)
# The other client is a process of its own: in this one it would hold the GIL while it
# builds its answer's Python objects, and delay the measured producer's callbacks.
lister = subprocess.Popen([sys.executable, "-c", LISTER, bootstrap, "10"], stdout=subprocess.PIPE, text=True)
busy = latencies(10)
listed, each = lister.communicate()[0].split()
print(f"produce latency p50/p99: {quiet[0]:.1f}/{quiet[1]:.1f} ms quiet; {busy[0]:.1f}/{busy[1]:.1f} ms while "
      f"another client fetched the metadata of all topics {listed} times ({float(each):.2f} s each)", flush=True)
t0 = time.time()
p.terminate(); p.wait(120)
print(f"clean shutdown in {time.time() - t0:.1f} s", flush=True)
p, bootstrap, ready = start(d)
md_t0 = time.time()
AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=120)
print(f"restart: listening after {ready:.1f} s, metadata of all topics {time.time() - md_t0:.1f} s later; "
      f"RSS {rss_mb(p.pid):.0f} MB; {fds(p.pid)} descriptors", flush=True)
for args in (["topics", "list"], ["topics", "describe", "t7"], ["topics", "describe"]):
    t0 = time.time()
    out = subprocess.run([STROM, *args, "--bootstrap-server", bootstrap], capture_output=True, text=True)
    print(f"strom {' '.join(args)}: {time.time() - t0:.2f} s, {len(out.stdout.splitlines())} lines"
          f"{'' if out.returncode == 0 else ' FAILED: ' + out.stderr.strip()}", flush=True)
p.terminate(); p.wait(120)
shutil.rmtree(d, ignore_errors=True)
if kafka:
    kafka.cleanup()
