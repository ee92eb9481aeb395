"""The HTTP listener: /metrics scraped while real clients produce and consume, parsed with
the Prometheus client library's own parsers (both formats); /health and /ready; the bound
address in `strom cluster describe`."""
import glob
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from conftest import STROM, StromBroker

# Records produced and consumed under the scrapes.
N = 20000
OPENMETRICS = "application/openmetrics-text;version=1.0.0;q=0.6,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"


@pytest.fixture(scope="module")
def metered():
    b = StromBroker(extra={"strom.metrics.per.partition": "true"}).start()
    yield b
    b.cleanup()


def get(url, accept=None, method="GET"):
    req = urllib.request.Request(url, method=method, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def scrape(broker, openmetrics=False):
    """{(sample name, frozenset(labels)): value} of one scrape, through the parser of its format."""
    status, ctype, body = get(broker.http + "/metrics", OPENMETRICS if openmetrics else None)
    assert status == 200
    if openmetrics:
        assert ctype.startswith("application/openmetrics-text; version=1.0.0"), ctype
        assert body.endswith("# EOF\n")
        families = list(parse_openmetrics(body))
    else:
        assert ctype.startswith("text/plain; version=0.0.4"), ctype
        families = list(parse_text(body))
    types = {f.name: f.type for f in families}
    samples = {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}
    return types, samples


def value(samples, name, **labels):
    return samples[(name, frozenset((k, str(v)) for k, v in labels.items()))]


def topic(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def produce(bootstrap, name, n, timestamp_ms, start=0):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "none"})
    for i in range(start, start + n):
        p.produce(name, key=f"k{i}".encode(), value=b"v" * (i % 50), partition=i % 3,
                  timestamp=timestamp_ms)
        if i % 1000 == 999:
            # In steps, so that scrapes fall between them.
            assert p.flush(30) == 0
            time.sleep(0.02)
    assert p.flush(30) == 0


def consume_all(bootstrap, name, group, n):
    """Reads every partition from the start with assign() (no rebalance, so no batch is
    fetched twice), then commits."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    c.assign([TopicPartition(name, p, 0) for p in range(3)])
    got = 0
    deadline = time.time() + 60
    while got < n and time.time() < deadline:
        m = c.poll(1)
        if m is not None and m.error() is None:
            got += 1
            if got % 2000 == 0:
                time.sleep(0.03)
    assert got == n
    c.commit(asynchronous=False)
    c.close()


def log_bytes(broker, name):
    files = glob.glob(os.path.join(broker.dir, "data", f"{name}-*", "*.log"))
    return sum(os.path.getsize(f) for f in files)


def scrapes_during(broker, work):
    """Scrapes (alternating formats) every 50 ms while `work` runs; every counter and
    histogram count of each scrape at least that of the one before."""
    done = threading.Event()
    taken = []

    def loop():
        while not done.is_set():
            taken.append(scrape(broker, openmetrics=len(taken) % 2 == 1))
            time.sleep(0.05)

    t = threading.Thread(target=loop)
    t.start()
    try:
        work()
    finally:
        done.set()
        t.join()
    assert len(taken) >= 2
    for (types, before), (_, after) in zip(taken, taken[1:]):
        for (name, labels), v in before.items():
            if types.get(name.removesuffix("_total")) == "counter" or name.endswith(("_count", "_bucket")):
                assert after[(name, labels)] >= v, (name, labels)
    return taken


def test_byte_and_record_counters_equal_what_clients_sent_and_read_and_only_grow(metered):
    topic(metered.bootstrap, "mt", 3)
    now = int(time.time() * 1000)
    scrapes_during(metered, lambda: produce(metered.bootstrap, "mt", N, now - 600_000))
    types, first = scrape(metered)
    stored = log_bytes(metered, "mt")
    # Batches are stored as received: the bytes in are the log's bytes.
    assert value(first, "strom_topic_in_bytes_total", topic="mt") == stored
    assert value(first, "strom_topic_in_records_total", topic="mt") == N
    assert value(first, "strom_topic_log_size_bytes", topic="mt") == stored
    assert sum(value(first, "strom_partition_in_records_total", topic="mt", partition=p) for p in range(3)) == N
    assert value(first, "strom_broker_in_bytes_total") >= stored
    assert types["strom_topic_in_bytes"] == "counter"
    assert types["strom_request_duration_seconds"] == "histogram"

    scrapes_during(metered, lambda: consume_all(metered.bootstrap, "mt", "mg", N))
    _, second = scrape(metered, openmetrics=True)
    assert value(second, "strom_topic_out_bytes_total", topic="mt") == stored
    assert value(second, "strom_topic_out_records_total", topic="mt") == N
    for p in range(3):
        assert value(second, "strom_partition_out_bytes_total", topic="mt", partition=p) == \
            value(second, "strom_partition_log_size_bytes", topic="mt", partition=p)
    # Every counter and histogram count only grew between the scrapes.
    for (name, labels), v in first.items():
        if types.get(name.removesuffix("_total")) == "counter" or name.endswith(("_count", "_bucket")):
            assert second[(name, labels)] >= v, (name, labels)
    produces = value(second, "strom_requests_total", api="Produce")
    assert produces >= 1
    assert value(second, "strom_request_duration_seconds_count", api="Produce") == produces
    for phase in ["request_queue", "local", "remote", "response_queue", "response_send"]:
        assert value(second, "strom_request_phase_duration_seconds_count", api="Produce", phase=phase) == produces
    assert value(second, "strom_connections_created_total", listener="PLAINTEXT") >= 2
    assert value(second, "strom_log_flush_duration_seconds_count") >= 1
    assert value(second, "strom_leader_partitions") == value(second, "strom_partitions")


def test_lag_in_records_equals_groups_describe_and_in_seconds_the_timestamp_gap(metered):
    topic(metered.bootstrap, "lag", 3)
    t0 = int(time.time() * 1000) - 600_000
    produce(metered.bootstrap, "lag", 300, t0)
    consume_all(metered.bootstrap, "lag", "lg", 300)
    # 90 s newer records, not consumed.
    produce(metered.bootstrap, "lag", 150, t0 + 90_000, start=300)
    _, s = scrape(metered)
    out = subprocess.run([STROM, "groups", "describe", "lg", "--bootstrap-server", metered.bootstrap,
                          "--output", "json"], capture_output=True, text=True, check=True)
    described = json.loads(out.stdout)["partitions"]
    assert len(described) == 3
    for row in described:
        lag = value(s, "strom_consumer_group_partition_lag_records", group="lg", topic="lag", partition=row["partition"])
        assert lag == row["lag"] == 50
        seconds = value(s, "strom_consumer_group_partition_lag_seconds", group="lg", topic="lag", partition=row["partition"])
        assert seconds == 90.0
    assert value(s, "strom_consumer_group_lag_records", group="lg", topic="lag") == 150
    assert value(s, "strom_consumer_group_lag_seconds", group="lg", topic="lag") == 90.0
    assert value(s, "strom_consumer_group_state", group="lg", state="Empty") == 1
    assert value(s, "strom_consumer_group_members", group="lg") == 0


def test_health_ready_methods_and_the_address_in_cluster_describe(metered):
    assert get(metered.http + "/health")[:1] == (200,)
    status, _, body = get(metered.http + "/ready")
    assert (status, body) == (200, "ready\n")
    assert get(metered.http + "/nothing-here")[0] == 404
    assert get(metered.http + "/metrics", method="POST")[0] == 405
    _, s = scrape(metered)
    assert value(s, "strom_metadata_quorum_state", state="leader") == 1
    assert value(s, "strom_metadata_quorum_leader") == 1
    out = subprocess.run([STROM, "cluster", "describe", "--bootstrap-server", metered.bootstrap,
                          "--output", "json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["brokers"][0]["http"] == metered.http


def test_an_http_listener_given_on_a_taken_port_stops_the_start_up():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    b = StromBroker(extra={"strom.http.listener": f"http://127.0.0.1:{port}"})
    try:
        b.spawn()
        assert b.proc.wait(30) != 0
        log = open(b.log_path).read()
        assert f"binding strom.http.listener http://127.0.0.1:{port}" in log, log
    finally:
        taken.close()
        b.cleanup()
