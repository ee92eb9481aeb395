"""Connections benchmark (scripts/bench-conns, BENCHMARKS.md "Scale"): one broker, IDLE
connections that each sent one ApiVersions request and then stay open doing nothing, then
ACTIVE of them sending ApiVersions requests back to back (one in flight each) for SECONDS;
the broker's RSS and descriptors at each step, and the request rate of the active phase.
Raw sockets from one Python process (selectors), so the client costs no broker memory.

    scripts/bench-conns [path/to/strom] [idle] [active] [seconds] [kafka]

With `kafka` last the same runs against Apache Kafka 4.1.2
(tests/compat/kafka_ref.py), for reference."""
import os, re, resource, selectors, socket, struct, subprocess, sys, tempfile, time, shutil

STROM, IDLE, ACTIVE, SECONDS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
KAFKA = len(sys.argv) > 5 and sys.argv[5] == "kafka"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def api_versions(correlation):
    body = struct.pack(">hhih", 18, 0, correlation, 5) + b"bench"
    return struct.pack(">i", len(body)) + body


def start_strom(d):
    p = subprocess.Popen([STROM, "broker", "--override", f"log.dirs={d}/data", "--override",
                          "listeners=PLAINTEXT://127.0.0.1:0"], stdout=subprocess.PIPE,
                         stderr=open(f"{d}/broker.log", "a"), text=True)
    for line in p.stdout:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return p, p.pid, int(m.group(1))
    raise RuntimeError("no start")


def status(pid):
    rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
    return f"RSS {rss / 1024:.0f} MB, {len(os.listdir(f'/proc/{pid}/fd'))} descriptors"


def read_frame(s):
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
    (size,) = struct.unpack(">i", head)
    while size:
        size -= len(s.recv(size))


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    d = tempfile.mkdtemp(prefix="conns-bench-")
    if KAFKA:
        sys.path.insert(0, os.path.join(ROOT, "tests", "compat"))
        import kafka_ref
        k = kafka_ref.KafkaBroker({"max.connections.per.ip": str(IDLE + 100)}).start()
        pid, port = k.proc.pid, k.port
    else:
        p, pid, port = start_strom(d)
    time.sleep(2)
    print(f"idle broker: {status(pid)}", flush=True)
    socks = []
    t0 = time.time()
    for i in range(IDLE):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(api_versions(i))
        read_frame(s)
        socks.append(s)
    time.sleep(2)
    print(f"{IDLE} idle connections (opened in {time.time() - t0:.1f} s): {status(pid)}", flush=True)
    sel = selectors.DefaultSelector()
    active = socks[:ACTIVE]
    pending = {}
    for i, s in enumerate(active):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        s.sendall(api_versions(i))
        pending[i] = b""
    done = 0
    peak = ""
    t0 = time.time()
    next_sample = t0 + SECONDS / 2
    while time.time() - t0 < SECONDS:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            buf = pending[key.data] + s.recv(65536)
            while len(buf) >= 4:
                (size,) = struct.unpack(">i", buf[:4])
                if len(buf) < 4 + size:
                    break
                buf = buf[4 + size:]
                done += 1
                s.send(api_versions(done))
            pending[key.data] = buf
        if time.time() >= next_sample:
            peak = status(pid)
            next_sample = float("inf")
    elapsed = time.time() - t0
    print(f"{ACTIVE} of them active: {done / elapsed:,.0f} requests/s; mid-run {peak}", flush=True)
    for s in socks:
        s.close()
    time.sleep(3)
    print(f"all closed: {status(pid)}", flush=True)
    if KAFKA:
        k.cleanup()
    else:
        p.terminate()
        p.wait(60)
    shutil.rmtree(d, ignore_errors=True)


main()
