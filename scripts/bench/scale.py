"""Scale benchmark (scripts/bench-scale, BENCHMARKS.md "Scale"): TOPICS x PER partitions
created on one broker (CreateTopics, 20 topics a request); the time, RSS and descriptors;
then a restart after a clean shutdown: the time until it listens and serves Metadata."""
import os, re, subprocess, sys, tempfile, time, shutil
from confluent_kafka.admin import AdminClient, NewTopic

STROM, TOPICS, PER = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def start(d):
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
print(f"{TOPICS * PER} partitions created in {created:.1f} s; RSS {rss_mb(p.pid):.0f} MB (idle broker {base_rss:.0f} MB); "
      f"{fds(p.pid)} descriptors", flush=True)
p.terminate(); p.wait(120)
p, bootstrap, ready = start(d)
md_t0 = time.time()
AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=120)
print(f"restart: listening after {ready:.1f} s, metadata of all topics {time.time() - md_t0:.1f} s later; "
      f"RSS {rss_mb(p.pid):.0f} MB; {fds(p.pid)} descriptors", flush=True)
p.terminate(); p.wait(120)
shutil.rmtree(d, ignore_errors=True)
