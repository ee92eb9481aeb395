#!/usr/bin/env python3
"""Strom and Apache Kafka 4.1.2 side by side, in one run (BENCHMARKS.md, "Strom vs Apache
Kafka 4.1.2, side by side"). Run by scripts/bench-broker, which builds what it needs and calls

    target/venv/bin/python scripts/bench/vs_kafka.py --strom BIN --rdkperf BIN --work DIR

Three brokers, each freshly started on an empty data dir in DIR for every round:
  strom        the release build, default settings (acks=all waits for the group-commit fsync)
  kafka        Kafka 4.1.2 (jars of scripts/kafka-install), kafka_ref.py's single-node KRaft
               properties, otherwise Kafka's defaults: no fsync before acknowledging
  kafka-fsync  the same plus log.flush.interval.messages=1: an append is fsynced before the
               request is answered, so acks=1 and acks=all are durable, like Strom's acks=all
Each round runs every broker once; the order rotates from round to round.

Per broker session: start-up (process start to a Metadata response listing the broker; Kafka's
`kafka-storage format` timed on its own), idle RSS, then with both librdkafka's
rdkafka_performance and Kafka's own Java tools, after an unmeasured warm-up (the same for every
broker, so no measured load meets a cold JIT): produce acks=1, produce acks=all, consume,
acks=all latency at 10,000 records/s (rdkafka_performance at linger.ms=5 and 1), end-to-end
latency; broker CPU (utime+stime from /proc/<pid>/stat) around each throughput load, RSS
sampled every 0.2 s during the throughput loads and VmHWM at the end.

Kafka's JVM: kafka-server-start.sh's heap (-Xmx1G -Xms1G) and kafka-run-class.sh's
KAFKA_JVM_PERFORMANCE_OPTS (G1, full JIT), with kafka_ref.py's quiet log4j2 config; the Java
tools get -Xmx512M as their scripts give them. STROM_BENCH_KAFKA_JVM=ref swaps in kafka_ref.py's
test flags (serial GC, C1 only) with the same heap.

Sizes come from the environment (STROM_BENCH_*; see SIZES below); STROM_BENCH_QUICK=1 is a
tiny dry run. Results: DIR/vs-kafka/results.json (all numbers), DIR/vs-kafka/summary.md (the
tables), logs of every tool and broker in DIR/vs-kafka/logs.
"""
import argparse
import base64
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat"))
import kafka_ref  # noqa: E402  (KafkaBroker.properties, metadata_brokers, free_port, jars)

CLK_TCK = os.sysconf("SC_CLK_TCK")
REC = 1024  # record value size, bytes; no keys
PARTS = 6

QUICK = os.environ.get("STROM_BENCH_QUICK", "") not in ("", "0")


def env_int(name, full, quick):
    return int(os.environ.get(name, quick if QUICK else full))


SIZES = {
    # records per produce run (each of the 4 produce runs: 2 tools x acks=1/all)
    "msgs": env_int("STROM_BENCH_VS_MSGS", 500_000, 20_000),
    # records per acks=all latency run, sent at 10,000 records/s
    "lat_msgs": env_int("STROM_BENCH_VS_LAT_MSGS", 100_000, 5_000),
    "lat_rate": env_int("STROM_BENCH_VS_LAT_RATE", 10_000, 10_000),
    # records per end-to-end run (rdkafka_performance at 1,000/s; EndToEndLatency one at a time)
    "e2e_msgs": env_int("STROM_BENCH_VS_E2E_MSGS", 10_000, 1_000),
    "rounds": env_int("STROM_BENCH_ROUNDS", 3, 1),
    "idle_secs": env_int("STROM_BENCH_VS_IDLE_SECS", 5, 2),
    # records per warm-up run (3 produce runs and a consume, before the measured loads)
    "warmup_msgs": env_int("STROM_BENCH_VS_WARMUP_MSGS", 100_000, 10_000),
}

# Kafka's own start scripts: kafka-server-start.sh sets KAFKA_HEAP_OPTS="-Xmx1G -Xms1G",
# kafka-run-class.sh KAFKA_JVM_PERFORMANCE_OPTS as below; the tools' scripts
# (kafka-producer-perf-test.sh, ...) set -Xmx512M.
STOCK_PERF_OPTS = ["-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                   "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                   "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true"]
# tests/compat/kafka_ref.py's broker flags (serial GC, C1 only: made for fast test start-up),
# with the benchmark heap. STROM_BENCH_KAFKA_JVM=ref selects them.
REF_PERF_OPTS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]
KAFKA_JVM = os.environ.get("STROM_BENCH_KAFKA_JVM", "stock")
BROKER_JVM = (["-Xmx1G", "-Xms1G"]
              + (REF_PERF_OPTS if KAFKA_JVM == "ref" else STOCK_PERF_OPTS)
              + [f"-Dlog4j2.configurationFile={kafka_ref.LOG4J2}"])
TOOL_JVM = ["-Xmx512M"] + STOCK_PERF_OPTS + [f"-Dlog4j2.configurationFile={kafka_ref.LOG4J2}"]
STORAGE_JVM = ["-Xmx256M"] + STOCK_PERF_OPTS + [f"-Dlog4j2.configurationFile={kafka_ref.LOG4J2}"]

BROKERS = ["strom", "kafka", "kafka-fsync"]


# --- /proc -------------------------------------------------------------------------------

def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def others():
    """What else runs: the test suites the brief names, and the busiest processes right now."""
    pat = r"scripts/test|cargo |pytest|librdkafka-suite|franz-go-suite|test-runner"
    suites = subprocess.run(["pgrep", "-fa", pat], capture_output=True, text=True).stdout.strip()
    top = subprocess.run(["top", "-b", "-n", "1", "-o", "%CPU", "-w", "200"],
                         capture_output=True, text=True).stdout.splitlines()
    busy = []
    for line in top:
        f = line.split()
        if len(f) >= 12 and f[0].isdigit():
            try:
                cpu = float(f[8])
            except ValueError:
                continue
            if cpu >= 5.0:
                busy.append(f"{f[11]}({f[0]}) {cpu:.0f}%")
    return {"suites": [s for s in suites.splitlines() if str(os.getpid()) not in s.split()[0]],
            "busy": busy}


class RssSampler(threading.Thread):
    """VmRSS every 0.2 s while `on` is set; keeps the maximum."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.on, self.stop_ = pid, threading.Event(), threading.Event()
        self.max_kb = 0

    def run(self):
        while not self.stop_.is_set():
            if self.on.is_set():
                try:
                    self.max_kb = max(self.max_kb, status_kb(self.pid, "VmRSS") or 0)
                except OSError:
                    return
            time.sleep(0.2)


# --- brokers -----------------------------------------------------------------------------

def wait_metadata(port, proc, t0, timeout, interval):
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            if kafka_ref.metadata_brokers("127.0.0.1", port, timeout=1.0):
                return time.monotonic() - t0
        except (OSError, struct.error):
            pass
        time.sleep(interval)
    return None


class Broker:
    def __init__(self, kind, dir, strom_bin):
        self.kind, self.dir, self.strom_bin = kind, dir, strom_bin
        shutil.rmtree(dir, ignore_errors=True)
        os.makedirs(dir)
        self.data_dir = os.path.join(dir, "data")
        self.port = kafka_ref.free_port()
        self.controller_port = kafka_ref.free_port()
        self.extra = {"log.flush.interval.messages": "1"} if kind == "kafka-fsync" else {}
        self.proc = None
        self.format_s = None
        self.start_s = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        log = open(os.path.join(self.dir, "broker.log"), "w")
        if self.kind == "strom":
            cmd = [self.strom_bin, "broker", "--override", f"log.dirs={self.data_dir}",
                   "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}"]
        else:
            config = os.path.join(self.dir, "server.properties")
            with open(config, "w") as f:
                for k, v in kafka_ref.KafkaBroker.properties(self).items():
                    f.write(f"{k}={v}\n")
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            t = time.monotonic()
            fmt = subprocess.run(["java", *STORAGE_JVM, "-cp", kafka_ref.CLASSPATH,
                                  "kafka.tools.StorageTool", "format", "--standalone",
                                  "-t", cluster_id, "-c", config],
                                 capture_output=True, text=True, timeout=120)
            self.format_s = time.monotonic() - t
            if fmt.returncode != 0:
                raise RuntimeError(f"kafka-storage format failed:\n{fmt.stdout}\n{fmt.stderr}")
            cmd = ["java", *BROKER_JVM, "-cp", kafka_ref.CLASSPATH, "kafka.Kafka", config]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        self.start_s = wait_metadata(self.port, self.proc, t0, 120,
                                     0.001 if self.kind == "strom" else 0.01)
        if self.start_s is None:
            self.stop()
            raise RuntimeError(f"{self.kind} did not start; see {self.dir}/broker.log")
        return self

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def create_topics(bootstrap):
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": bootstrap})
    fs = a.create_topics([NewTopic("perf", PARTS, 1), NewTopic("warmup", PARTS, 1),
                          NewTopic("e2e", 1, 1), NewTopic("e2e-java", 1, 1)])
    for f in fs.values():
        f.result(60)
    # Leaders known to a fresh client before the first load.
    deadline = time.time() + 60
    while time.time() < deadline:
        md = a.list_topics(timeout=10)
        ok = all(t in md.topics and not md.topics[t].error and
                 all(p.leader >= 0 for p in md.topics[t].partitions.values())
                 for t in ("perf", "warmup", "e2e", "e2e-java"))
        if ok:
            return
        time.sleep(0.2)
    raise RuntimeError("topics have no leaders")


# --- tools -------------------------------------------------------------------------------

class Session:
    """One broker, started fresh, and every load run against it."""

    def __init__(self, args, kind, rnd):
        self.args, self.kind, self.rnd = args, kind, rnd
        self.logdir = os.path.join(args.out, "logs", f"r{rnd}-{kind}")
        os.makedirs(self.logdir, exist_ok=True)
        self.broker = Broker(kind, os.path.join(args.work, "vs-data", kind), args.strom)
        self.r = {"broker": kind, "round": rnd, "loads": {}}
        self.n = 0

    def java(self, cls, *a):
        return ["java", *TOOL_JVM, "-cp", kafka_ref.CLASSPATH, cls, *[str(x) for x in a]]

    def rdk(self, *a):
        return [self.args.rdkperf, *[str(x) for x in a], "-b", self.broker.bootstrap]

    def run(self, name, cmd, timeout):
        self.n += 1
        path = os.path.join(self.logdir, f"{self.n:02d}-{name}.log")
        with open(path, "w") as log:
            log.write(" ".join(cmd) + "\n")
            log.flush()
            try:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, timeout=timeout)
                out, rc = p.stdout, p.returncode
            except subprocess.TimeoutExpired as e:
                out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
                rc = "timeout"
            log.write(out)
        if rc != 0:
            print(f"    {name}: exit {rc}; see {path}", flush=True)
        return out

    def load(self, name, cmd, records, parse, timeout):
        """A throughput load: the broker's CPU around it, the tool's own figure."""
        subprocess.run(["sync"])  # the previous load's dirty pages are not this one's work
        pid = self.broker.pid
        c0, t0 = cpu_ticks(pid), time.monotonic()
        out = self.run(name, cmd, timeout)
        c1, t1 = cpu_ticks(pid), time.monotonic()
        res = {"wall_s": round(t1 - t0, 3), "cpu_s": (c1 - c0) / CLK_TCK}
        try:
            res.update(parse(out))
        except Exception as e:  # a failed load is a hole in the table, not the end of the run
            res["error"] = f"{type(e).__name__}: {e}"
        gb = records * REC / 1e9
        res["cpu_s_per_gb"] = round(res["cpu_s"] / gb, 3)
        self.r["loads"][name] = res
        mbps = res.get("mb_s")
        print(f"    {name:<22} {mbps if mbps is not None else 'FAILED':>8} MB/s"
              f"   broker CPU {res['cpu_s']:.2f} s ({res['cpu_s_per_gb']:.2f} s/GB)", flush=True)

    def latency(self, name, fn):
        subprocess.run(["sync"])
        try:
            res = fn()
        except Exception as e:
            res = {"error": f"{type(e).__name__}: {e}"}
        self.r["loads"][name] = res
        print(f"    {name:<22} " + ", ".join(f"{k} {v}" for k, v in res.items()), flush=True)

    # -- the loads --

    def go(self):
        S = SIZES
        b = self.broker
        la0 = loadavg()
        b.start()
        self.r["start_s"] = round(b.start_s, 3)
        self.r["format_s"] = round(b.format_s, 3) if b.format_s is not None else None
        self.r["pid"] = b.pid
        create_topics(b.bootstrap)
        time.sleep(S["idle_secs"])
        self.r["rss_idle_kb"] = status_kb(b.pid, "VmRSS")
        print(f"  {self.kind}: pid {b.pid}, start-up {b.start_s:.3f} s"
              + (f" (+ storage format {b.format_s:.2f} s)" if b.format_s else "")
              + f", idle RSS {self.r['rss_idle_kb'] / 1024:.0f} MB", flush=True)
        sampler = RssSampler(b.pid)
        sampler.start()
        sampler.on.set()
        n = S["msgs"]
        big = max(120, n // 2000)
        # Warm-up, not measured: the JVM's JIT compiles the broker's hot paths during the first
        # few hundred MB; every broker gets the same so no load below runs on a cold broker.
        w = S["warmup_msgs"]
        if w:
            t = time.monotonic()
            for acks in (1, -1):
                self.run(f"warmup-produce-acks{acks}",
                         self.rdk("-P", "-t", "warmup", "-s", REC, "-c", w, "-a", acks,
                                  "-X", "linger.ms=5"), big)
            self.run("warmup-produce-java",
                     self.java("org.apache.kafka.tools.ProducerPerformance", "--topic", "warmup",
                               "--num-records", w, "--record-size", REC, "--throughput", -1,
                               "--producer-props", f"bootstrap.servers={b.bootstrap}", "acks=1"),
                     big)
            self.run("warmup-consume",
                     self.rdk("-C", "-t", "warmup", *sum((["-p", str(p)] for p in range(PARTS)), []),
                              "-o", "beginning", "-c", 3 * w), big)
            self.r["warmup_s"] = round(time.monotonic() - t, 1)
        for acks, label in ((1, "1"), (-1, "all")):
            self.load(f"produce-acks{label}-rdkafka",
                      self.rdk("-P", "-t", "perf", "-s", REC, "-c", n, "-a", acks,
                               "-X", "linger.ms=5"),
                      n, parse_rdk_produce, big)
            self.load(f"produce-acks{label}-java",
                      self.java("org.apache.kafka.tools.ProducerPerformance", "--topic", "perf",
                                "--num-records", n, "--record-size", REC, "--throughput", -1,
                                "--producer-props", f"bootstrap.servers={b.bootstrap}",
                                f"acks={label}"),
                      n, parse_java_produce, big)
        self.r["rss_after_produce_kb"] = status_kb(b.pid, "VmRSS")
        total = 4 * n
        self.load("consume-rdkafka",
                  self.rdk("-C", "-t", "perf", *sum((["-p", str(p)] for p in range(PARTS)), []),
                           "-o", "beginning", "-c", total),
                  total, parse_rdk_consume, big)
        self.load("consume-java",
                  self.java("org.apache.kafka.tools.ConsumerPerformance",
                            "--bootstrap-server", b.bootstrap, "--topic", "perf",
                            "--messages", total, "--timeout", 30000),
                  total, parse_java_consume, big)
        sampler.on.clear()
        self.r["rss_load_max_kb"] = sampler.max_kb
        self.r["hwm_after_throughput_kb"] = status_kb(b.pid, "VmHWM")
        # acks=all latency at a fixed rate, both clients at linger.ms=5 (librdkafka's default
        # and the Java producer's since Kafka 4.0; rdkafka_performance would otherwise set 1 s).
        lm, rate = S["lat_msgs"], S["lat_rate"]
        lat_timeout = 60 + 3 * lm // rate
        latfile = os.path.join(self.logdir, "lat-rdkafka.txt")
        self.latency("lat-acksall-rdkafka", lambda: percentiles_us(
            latfile, self.run("lat-acksall-rdkafka",
                              self.rdk("-P", "-t", "perf", "-s", REC, "-c", lm, "-r", rate,
                                       "-a", -1, "-l", "-A", latfile, "-X", "linger.ms=5"),
                              lat_timeout)))
        # The same at linger.ms=1: with 5 ms of client linger in every figure above, this shows
        # more of the broker's own share.
        latfile1 = os.path.join(self.logdir, "lat-rdkafka-linger1.txt")
        self.latency("lat-acksall-rdkafka-linger1", lambda: percentiles_us(
            latfile1, self.run("lat-acksall-rdkafka-linger1",
                               self.rdk("-P", "-t", "perf", "-s", REC, "-c", lm, "-r", rate,
                                        "-a", -1, "-l", "-A", latfile1, "-X", "linger.ms=1"),
                               lat_timeout)))
        self.latency("lat-acksall-java", lambda: parse_java_produce(self.run(
            "lat-acksall-java",
            self.java("org.apache.kafka.tools.ProducerPerformance", "--topic", "perf",
                      "--num-records", lm, "--record-size", REC, "--throughput", rate,
                      "--producer-props", f"bootstrap.servers={b.bootstrap}", "acks=all"),
            lat_timeout), latency=True))
        # End to end. rdkafka_performance: a consumer on partition 0 of `e2e` (client defaults,
        # fetch.wait.max.ms=500) and a producer at 1,000 records/s into it, both with -l
        # (latency = consume time - the producer's timestamp in the payload).
        em = S["e2e_msgs"]
        e2efile = os.path.join(self.logdir, "e2e-rdkafka.txt")

        def e2e_rdk():
            cons_log = open(os.path.join(self.logdir, "e2e-rdkafka-consumer.log"), "w")
            cons = subprocess.Popen(self.rdk("-C", "-t", "e2e", "-p", 0, "-o", "end", "-l",
                                             "-A", e2efile, "-c", em),
                                    stdout=cons_log, stderr=subprocess.STDOUT)
            time.sleep(2)
            self.run("e2e-rdkafka-producer",
                     self.rdk("-P", "-t", "e2e", "-p", 0, "-s", REC, "-c", em, "-r", 1000, "-l",
                              "-a", 1, "-X", "linger.ms=5"), 60 + em // 500)
            try:
                cons.wait(timeout=30)
            except subprocess.TimeoutExpired:
                cons.kill()
                cons.wait()
            cons_log.close()
            return percentiles_us(e2efile, "")
        self.latency("e2e-rdkafka", e2e_rdk)
        # Kafka's EndToEndLatency: one record at a time, acks=1, producer linger 0, consumer
        # fetch.max.wait.ms 0; latency = send to receipt by the consumer (whole ms).
        self.latency("e2e-java", lambda: parse_e2e_java(self.run(
            "e2e-java", self.java("org.apache.kafka.tools.EndToEndLatency", b.bootstrap,
                                  "e2e-java", em, 1, REC), 120 + em // 50)))
        self.r["rss_end_kb"] = status_kb(b.pid, "VmRSS")
        self.r["hwm_end_kb"] = status_kb(b.pid, "VmHWM")
        sampler.stop_.set()
        b.stop()
        shutil.copy(os.path.join(b.dir, "broker.log"), os.path.join(self.logdir, "broker.log"))
        shutil.rmtree(b.dir, ignore_errors=True)
        subprocess.run(["sync"])
        self.r["loadavg_before"], self.r["loadavg_after"] = la0, loadavg()
        return self.r


# --- parsing -----------------------------------------------------------------------------

def parse_rdk_produce(out):
    m = re.findall(r"(\d+) delivered \(offset -?\d+, (\d+) failed\) in (\d+)ms: (\d+) msgs/s and "
                   r"([0-9.]+) MB/s", out)
    if not m:
        raise ValueError("no summary line")
    delivered, failed, ms, rps, mbps = m[-1]
    if int(failed):
        raise ValueError(f"{failed} failed deliveries")
    return {"mb_s": round(float(mbps), 1), "rec_s": int(rps), "records": int(delivered)}


def parse_rdk_consume(out):
    m = [x for x in re.findall(r"^% (INTERVAL: )?(\d+) messages \(\d+ bytes\) consumed in (\d+)ms: "
                               r"(\d+) msgs/s \(([0-9.]+) MB/s\)", out, re.M) if not x[0]]
    if not m:
        raise ValueError("no summary line")
    _, n, ms, rps, mbps = m[-1]
    return {"mb_s": round(float(mbps), 1), "rec_s": int(rps), "records": int(n)}


def parse_java_produce(out, latency=False):
    # "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency,
    #  a ms 50th, b ms 95th, c ms 99th, d ms 99.9th."
    m = re.findall(r"(\d+) records sent, ([0-9.]+) records/sec \([0-9.]+ MB/sec\), ([0-9.]+) ms avg "
                   r"latency, ([0-9.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, "
                   r"(\d+) ms 99\.9th", out)
    if not m:
        raise ValueError("no summary line")
    n, rps, avg, mx, p50, p95, p99, p999 = m[-1]
    if latency:
        res = {"p50_ms": float(p50), "p99_ms": float(p99), "p999_ms": float(p999),
               "max_ms": float(mx), "n": int(n), "rec_s": round(float(rps))}
        # The tool also prints a line per 5 s window (records, avg and max latency). The first
        # window holds the Java client's own start-up (JIT, metadata, producer id): its tail is
        # most of the whole run's p99 at 100,000 records. The later windows are steady state.
        w = re.findall(r"^(\d+) records sent, [0-9.]+ records/sec \([0-9.]+ MB/sec\), ([0-9.]+) ms avg "
                       r"latency, ([0-9.]+) ms max latency\.$", out, re.M)
        if w and int(n) > int(w[0][0]):
            # The whole run's average less the first window's: the later records' average.
            rest = int(n) - int(w[0][0])
            res["steady_avg_ms"] = round((int(n) * float(avg) - int(w[0][0]) * float(w[0][1])) / rest, 2)
            if len(w) >= 2:  # the last window's records are only in the summary line
                res["steady_max_ms"] = max(float(x[2]) for x in w[1:])
        return res
    return {"mb_s": round(float(rps) * REC / 1e6, 1), "rec_s": round(float(rps)), "records": int(n)}


def parse_java_consume(out):
    # header: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
    #         rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    lines = [l for l in out.splitlines() if l.strip()]
    for i, l in enumerate(lines):
        if l.startswith("start.time"):
            head = [h.strip() for h in l.split(",")]
            vals = [v.strip() for v in lines[i + 1].split(",")]
            d = dict(zip(head, vals))
            n = int(d["data.consumed.in.nMsg"])
            fetch_ms = float(d["fetch.time.ms"])
            return {"mb_s": round(n * REC / fetch_ms / 1e3, 1), "rec_s": round(n / fetch_ms * 1e3),
                    "records": n, "rebalance_ms": float(d["rebalance.time.ms"]),
                    "mb_s_incl_join": round(float(d["data.consumed.in.nMsg"]) * REC / 1e6 /
                                            ((fetch_ms + float(d["rebalance.time.ms"])) / 1e3), 1)}
    raise ValueError("no result line")


def parse_e2e_java(out):
    avg = re.search(r"Avg latency: ([0-9.]+) ms", out)
    pct = re.search(r"Percentiles: 50th = (\d+), 99th = (\d+), 99\.9th = (\d+)", out)
    if not (avg and pct):
        raise ValueError("no result lines")
    return {"avg_ms": round(float(avg.group(1)), 3), "p50_ms": float(pct.group(1)),
            "p99_ms": float(pct.group(2)), "p999_ms": float(pct.group(3))}


def percentiles_us(path, _out):
    with open(path) as f:
        v = sorted(int(l) for l in f if l.strip().isdigit())
    if not v:
        raise ValueError("no latencies")
    q = lambda p: round(v[min(len(v) - 1, int(len(v) * p))] / 1000.0, 2)
    return {"p50_ms": q(.5), "p99_ms": q(.99), "p999_ms": q(.999), "max_ms": round(v[-1] / 1000, 2),
            "n": len(v)}


# --- report ------------------------------------------------------------------------------

# (key, label, how to get the number from a session's result, higher is better?, target
#  ratios vs (kafka, kafka-fsync) as (op, value) or None)
def L(name, field):
    return lambda r: r["loads"].get(name, {}).get(field)


def kb_mb(field):
    return lambda r: (r.get(field) / 1024 if r.get(field) else None)


ROWS = [
    ("produce acks=1, rdkafka_performance (MB/s)", L("produce-acks1-rdkafka", "mb_s"), True, (1, 2)),
    ("produce acks=1, ProducerPerformance (MB/s)", L("produce-acks1-java", "mb_s"), True, (1, 2)),
    ("produce acks=all, rdkafka_performance (MB/s)", L("produce-acksall-rdkafka", "mb_s"), True, (1, 2)),
    ("produce acks=all, ProducerPerformance (MB/s)", L("produce-acksall-java", "mb_s"), True, (1, 2)),
    ("consume, rdkafka_performance (MB/s)", L("consume-rdkafka", "mb_s"), True, (1, 2)),
    ("consume, ConsumerPerformance (MB/s, fetch time)", L("consume-java", "mb_s"), True, (1, 2)),
    ("acks=all at 10k/s p50, rdkafka linger.ms=5 (ms)", L("lat-acksall-rdkafka", "p50_ms"), False, None),
    ("acks=all at 10k/s p99, rdkafka linger.ms=5 (ms)", L("lat-acksall-rdkafka", "p99_ms"), False, (0.5, 0.5)),
    ("acks=all at 10k/s p99.9, rdkafka linger.ms=5 (ms)", L("lat-acksall-rdkafka", "p999_ms"), False, None),
    ("acks=all at 10k/s p50, rdkafka linger.ms=1 (ms)", L("lat-acksall-rdkafka-linger1", "p50_ms"), False, None),
    ("acks=all at 10k/s p99, rdkafka linger.ms=1 (ms)", L("lat-acksall-rdkafka-linger1", "p99_ms"), False, (0.5, 0.5)),
    ("acks=all at 10k/s p99.9, rdkafka linger.ms=1 (ms)", L("lat-acksall-rdkafka-linger1", "p999_ms"), False, None),
    ("acks=all at 10k/s p50, ProducerPerformance (ms)", L("lat-acksall-java", "p50_ms"), False, None),
    ("acks=all at 10k/s p99, ProducerPerformance (ms)", L("lat-acksall-java", "p99_ms"), False, (0.5, 0.5)),
    ("acks=all at 10k/s p99.9, ProducerPerformance (ms)", L("lat-acksall-java", "p999_ms"), False, None),
    ("acks=all at 10k/s, ProducerPerformance after its first 5 s: avg (ms)",
     L("lat-acksall-java", "steady_avg_ms"), False, None),
    ("acks=all at 10k/s, ProducerPerformance after its first 5 s: max of full windows (ms)",
     L("lat-acksall-java", "steady_max_ms"), False, None),
    ("end-to-end p50, rdkafka 1k/s (ms)", L("e2e-rdkafka", "p50_ms"), False, None),
    ("end-to-end p99, rdkafka 1k/s (ms)", L("e2e-rdkafka", "p99_ms"), False, None),
    ("end-to-end p99.9, rdkafka 1k/s (ms)", L("e2e-rdkafka", "p999_ms"), False, None),
    ("end-to-end avg, EndToEndLatency (ms)", L("e2e-java", "avg_ms"), False, None),
    ("end-to-end p50, EndToEndLatency (ms)", L("e2e-java", "p50_ms"), False, None),
    ("end-to-end p99, EndToEndLatency (ms)", L("e2e-java", "p99_ms"), False, None),
    ("end-to-end p99.9, EndToEndLatency (ms)", L("e2e-java", "p999_ms"), False, None),
    ("RSS idle (MB)", kb_mb("rss_idle_kb"), False, (0.1, 0.1)),
    ("RSS under load, max sampled (MB)", kb_mb("rss_load_max_kb"), False, None),
    ("RSS peak, VmHWM at the end (MB)", kb_mb("hwm_end_kb"), False, None),
    ("start-up to Metadata (s)", lambda r: r.get("start_s"), False, (0.05, 0.05)),
    ("start-up incl. storage format (s)", lambda r: (r.get("start_s") or 0) + (r.get("format_s") or 0)
     if r.get("start_s") is not None else None, False, None),
    ("CPU s/GB, produce acks=1 rdkafka", L("produce-acks1-rdkafka", "cpu_s_per_gb"), False, None),
    ("CPU s/GB, produce acks=1 Java", L("produce-acks1-java", "cpu_s_per_gb"), False, None),
    ("CPU s/GB, produce acks=all rdkafka", L("produce-acksall-rdkafka", "cpu_s_per_gb"), False, None),
    ("CPU s/GB, produce acks=all Java", L("produce-acksall-java", "cpu_s_per_gb"), False, None),
    ("CPU s/GB, consume rdkafka", L("consume-rdkafka", "cpu_s_per_gb"), False, None),
    ("CPU s/GB, consume Java", L("consume-java", "cpu_s_per_gb"), False, None),
]


def fmt(x):
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if abs(x) >= 0.1 else f"{x:.3f}"


def summarize(results):
    by = {k: [r for r in results if r["broker"] == k] for k in BROKERS}
    med = {}
    per = {}
    for label, get, _, _ in ROWS:
        for k in BROKERS:
            vals = []
            for r in sorted(by[k], key=lambda r: r["round"]):
                try:
                    vals.append(get(r))
                except (TypeError, KeyError):
                    vals.append(None)
            per[(label, k)] = vals
            ok = [v for v in vals if v is not None]
            med[(label, k)] = statistics.median(ok) if ok else None
    out = ["| measure | Strom | Kafka default | Kafka fsync | Strom / Kafka default | "
           "Strom / Kafka fsync | target (Strom / Kafka) | met |",
           "|---|---:|---:|---:|---:|---:|---|---|"]
    for label, get, higher, target in ROWS:
        s, kd, kf = (med[(label, k)] for k in BROKERS)
        rd = s / kd if s is not None and kd else None
        rf = s / kf if s is not None and kf else None
        tgt, met = "", ""
        if target:
            if higher:
                tgt = f"≥ {target[0]:g} / ≥ {target[1]:g}"
                met = " / ".join("—" if r is None else ("yes" if r >= t else "no")
                                 for r, t in ((rd, target[0]), (rf, target[1])))
            else:
                tgt = f"≤ {target[0]:g}"
                met = " / ".join("—" if r is None else ("yes" if r <= t else "no")
                                 for r, t in ((rd, target[0]), (rf, target[1])))
        out.append(f"| {label} | {fmt(s)} | {fmt(kd)} | {fmt(kf)} | {fmt(rd)} | {fmt(rf)} | "
                   f"{tgt} | {met} |")
    table = "\n".join(out)
    runs = ["| measure | Strom (per round) | Kafka default (per round) | Kafka fsync (per round) |",
            "|---|---|---|---|"]
    for label, _, _, _ in ROWS:
        runs.append(f"| {label} | " + " | ".join(" · ".join(fmt(v) for v in per[(label, k)])
                                                  for k in BROKERS) + " |")
    return table, "\n".join(runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strom", required=False)
    ap.add_argument("--rdkperf", required=False)
    ap.add_argument("--work", default="/tmp/strom-bench")
    ap.add_argument("--report", help="only print the tables of an earlier results.json")
    args = ap.parse_args()
    if args.report:
        with open(args.report) as f:
            data = json.load(f)
        table, runs = summarize(data["sessions"])
        print(table + "\n\n" + runs)
        return
    args.out = os.path.join(args.work, "vs-kafka")
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(os.path.join(args.out, "logs"))
    kafka_ref.ensure_kafka()
    brokers = [b for b in os.environ.get("STROM_BENCH_BROKERS", ",".join(BROKERS)).split(",") if b]
    data_fs = subprocess.run(["findmnt", "-n", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS", "-T", args.work],
                             capture_output=True, text=True).stdout.strip()
    java_version = subprocess.run(["java", "-version"], capture_output=True,
                                  text=True).stderr.splitlines()[0]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sizes": SIZES, "cpu": cpu,
            "quick": QUICK, "nproc": os.cpu_count(), "kernel": os.uname().release,
            "data_fs": data_fs, "java": java_version, "kafka_jvm": KAFKA_JVM,
            "broker_jvm": BROKER_JVM, "tool_jvm": TOOL_JVM, "rounds": [],
            "git": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()}
    print(f"== Strom vs Kafka 4.1.2: {SIZES['rounds']} round(s), {SIZES['msgs']} x 1 KiB per "
          f"produce run, data under {args.work} ({data_fs}); Kafka JVM: {KAFKA_JVM}", flush=True)
    sessions = []
    t_all = time.monotonic()
    for rnd in range(1, SIZES["rounds"] + 1):
        k = (rnd - 1) % len(brokers)
        order = brokers[k:] + brokers[:k]
        info = {"round": rnd, "order": order, "loadavg_before": loadavg(), "others_before": others()}
        t = time.monotonic()
        print(f"-- round {rnd}: {' -> '.join(order)}; loadavg {info['loadavg_before']}; "
              f"suites running: {len(info['others_before']['suites'])}; busy: "
              f"{', '.join(info['others_before']['busy']) or 'nothing'}", flush=True)
        for kind in order:
            try:
                sessions.append(Session(args, kind, rnd).go())
            except Exception as e:
                print(f"  {kind}: FAILED: {e}", flush=True)
                sessions.append({"broker": kind, "round": rnd, "loads": {}, "error": str(e)})
            with open(os.path.join(args.out, "results.json"), "w") as f:
                json.dump({"meta": meta, "sessions": sessions}, f, indent=1)
        info["loadavg_after"] = loadavg()
        info["others_after"] = others()
        info["seconds"] = round(time.monotonic() - t)
        meta["rounds"].append(info)
        print(f"-- round {rnd} done in {info['seconds']} s; loadavg {info['loadavg_after']}; "
              f"busy: {', '.join(info['others_after']['busy']) or 'nothing'}", flush=True)
    meta["seconds"] = round(time.monotonic() - t_all)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "sessions": sessions}, f, indent=1)
    table, runs = summarize(sessions)
    rounds = "\n".join(f"- round {i['round']} ({' → '.join(i['order'])}): loadavg {i['loadavg_before']}"
                       f" before, {i['loadavg_after']} after, {i['seconds']} s; test suites running "
                       f"before/after: {len(i['others_before']['suites'])}/{len(i['others_after']['suites'])};"
                       f" busy before: {', '.join(i['others_before']['busy']) or 'nothing'}; after: "
                       f"{', '.join(i['others_after']['busy']) or 'nothing'}"
                       for i in meta["rounds"])
    md = (f"Strom vs Kafka 4.1.2 ({meta['started']}, git {meta['git']}, {meta['nproc']} x {cpu}, "
          f"{meta['java']}, Kafka JVM {KAFKA_JVM}; data dir fs: {data_fs}); medians of "
          f"{SIZES['rounds']} round(s), {meta['seconds']} s in all\n\n{rounds}\n\n{table}\n\n"
          f"Per round:\n\n{runs}\n")
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(md)
    print("\n" + md)


if __name__ == "__main__":
    main()
