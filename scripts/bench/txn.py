"""Transactions benchmark (scripts/bench-txn): one broker, confluent-kafka clients; Strom, then
Apache Kafka 4.1.2 (tests/compat/kafka_ref.py's single KRaft node) as it ships (no fsync) and
with `log.flush.interval.messages=1` (an fsync per append, Strom's durability), one after the
other on the same machine (STROM_BENCH_TXN_BROKERS picks: strom,kafka,kafka-fsync).

1. Throughput: the same number of 1 KiB records produced idempotently (acks=all) without
   transactions, then in transactions of 10, 100 and 1000 records (commit after each).
2. End-to-end latency at a steady rate (transactions of 10 records every 10 ms): records read
   read_committed (visible once committed) against the same load without transactions read
   read_uncommitted; p50 / p99 of (read time - produce time).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

RECORDS = int(os.environ.get("STROM_BENCH_TXN_RECORDS", "200000"))
BROKERS = os.environ.get("STROM_BENCH_TXN_BROKERS", "strom,kafka,kafka-fsync").split(",")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat"))
VALUE = b"x" * 1024
PARTITIONS = 4


def start_broker(strom):
    d = tempfile.mkdtemp(prefix="strom-bench-txn-")
    proc = subprocess.Popen([strom, "broker", "--override", f"log.dirs={d}/data",
                             "--override", "listeners=PLAINTEXT://127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=open(f"{d}/broker.log", "w"), text=True)
    for line in proc.stdout:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, d, f"127.0.0.1:{m.group(1)}"
    raise RuntimeError(f"strom did not start; see {d}/broker.log")


def topic(bootstrap):
    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result()
    return name


def producer(bootstrap, transactional):
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "batch.size": 1 << 20, "queue.buffering.max.messages": 1_000_000}
    if transactional:
        conf["transactional.id"] = f"bench-{uuid.uuid4().hex[:8]}"
    p = Producer(conf)
    if transactional:
        p.init_transactions(30)
    return p


def throughput(bootstrap, per_txn):
    """Records per second for RECORDS records; per_txn None: no transactions."""
    t = topic(bootstrap)
    p = producer(bootstrap, per_txn is not None)
    start = time.perf_counter()
    sent = 0
    while sent < RECORDS:
        n = min(per_txn or RECORDS, RECORDS - sent)
        if per_txn:
            p.begin_transaction()
        for i in range(n):
            while True:
                try:
                    p.produce(t, value=VALUE, partition=(sent + i) % PARTITIONS)
                    break
                except BufferError:
                    p.poll(0.01)
            p.poll(0)
        if per_txn:
            p.commit_transaction(60)
        sent += n
    p.flush(60)
    elapsed = time.perf_counter() - start
    return RECORDS / elapsed


def latency(bootstrap, transactional, rounds=500, per_round=10, every=0.01):
    """p50, p99 (ms) of read time - produce time at a steady rate."""
    t = topic(bootstrap)
    isolation = "read_committed" if transactional else "read_uncommitted"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "isolation.level": isolation,
                  "fetch.wait.max.ms": 10, "enable.auto.commit": False})
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    lat = []
    total = rounds * per_round
    done = threading.Event()

    def read():
        while len(lat) < total and not done.is_set():
            m = c.poll(0.1)
            if m is None or m.error():
                continue
            lat.append(time.time() * 1000 - float(m.value().decode()))
    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(1)  # the consumer connects
    p = producer(bootstrap, transactional)
    for _ in range(rounds):
        tick = time.perf_counter()
        if transactional:
            p.begin_transaction()
        for _ in range(per_round):
            p.produce(t, value=f"{time.time() * 1000:.3f}".encode())
        if transactional:
            p.commit_transaction(30)
        else:
            p.flush(30)
        time.sleep(max(0.0, every - (time.perf_counter() - tick)))
    reader.join(60)
    done.set()
    c.close()
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    return pick(0.5), pick(0.99), len(lat)


def measure(bootstrap):
    base = throughput(bootstrap, None)
    print(f"  throughput, {RECORDS} x 1 KiB, acks=all, idempotent, no transactions: {base:,.0f} records/s",
          flush=True)
    for k in (10, 100, 1000):
        r = throughput(bootstrap, k)
        print(f"  throughput, {k} records per transaction: {r:,.0f} records/s ({r / base:.2f}x)", flush=True)
    for transactional in (False, True):
        p50, p99, n = latency(bootstrap, transactional)
        what = "transactions of 10, read_committed" if transactional else "no transactions, read_uncommitted"
        print(f"  end-to-end latency, {what}: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({n} records)", flush=True)


def main():
    for name in BROKERS:
        print(name, flush=True)
        if name == "strom":
            proc, d, bootstrap = start_broker(sys.argv[1])
            try:
                measure(bootstrap)
            finally:
                proc.terminate()
                proc.wait(30)
                shutil.rmtree(d, ignore_errors=True)
        else:
            import kafka_ref
            extra = {"log.flush.interval.messages": "1"} if name == "kafka-fsync" else {}
            k = kafka_ref.KafkaBroker(extra).start()
            try:
                measure(k.bootstrap)
            finally:
                k.cleanup()


if __name__ == "__main__":
    main()
