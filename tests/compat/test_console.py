"""The web console in headless Chromium (tests/console/console.cjs, playwright-core from npm,
Debian's chromium) against a live broker with traffic; the console's API refusing writes
unless they are enabled."""
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ROOT, STROM, StromBroker

SCRIPT = os.path.join(ROOT, "tests", "console", "console.cjs")
NODE_MODULES = os.path.join(ROOT, "target", "node", "node_modules")
SHOTS = os.path.join(ROOT, "target", "console-screenshots")


def setup_topics(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic("console-t", 3, 1), NewTopic("console-live", 2, 1)]).values():
        f.result(30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(120):
        p.produce("console-t", key=f"k{i}", value=f"value {i}", partition=i % 3,
                  headers=[("source", b"console-test")])
    assert p.flush(30) == 0
    # The group has read 10 of each partition's 40 records and left.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "console-g", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("console-t", p, 10) for p in range(3)], asynchronous=False)
    c.close()


class Traffic:
    """Produces to `console-live` and consumes it in a group until stopped."""

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.produce), threading.Thread(target=self.consume)]
        for t in self.threads:
            t.start()

    def produce(self):
        p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 10})
        i = 0
        while not self.stop.is_set():
            p.produce("console-live", key=f"live{i}", value=f"live value {i}")
            p.poll(0)
            i += 1
            time.sleep(0.02)
        p.flush(10)

    def consume(self):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "console-live-readers",
                      "auto.offset.reset": "earliest"})
        c.subscribe(["console-live"])
        while not self.stop.is_set():
            c.poll(0.5)
        c.close()

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def run_console(mode, broker):
    os.makedirs(SHOTS, exist_ok=True)
    env = {**os.environ, "NODE_PATH": NODE_MODULES}
    r = subprocess.run(["node", SCRIPT, mode, broker.http, broker.bootstrap, STROM, SHOTS],
                       capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, f"console {mode} failed:\n{r.stdout}\n{r.stderr[-6000:]}\nscreenshots in {SHOTS}"


@pytest.fixture(scope="module", autouse=True)
def fresh_screenshots():
    """Screenshots of this run only (kept after it, as test artefacts)."""
    import shutil
    shutil.rmtree(SHOTS, ignore_errors=True)
    os.makedirs(SHOTS)


@pytest.fixture(scope="module")
def live():
    b = StromBroker().start()
    setup_topics(b.bootstrap)
    traffic = Traffic(b.bootstrap)
    yield b
    traffic.close()
    b.cleanup()


def test_every_page_shows_what_the_admin_tools_say_and_the_tail_is_live(live):
    run_console("read", live)


def test_writes_need_their_setting_and_a_confirmation():
    b = StromBroker(extra={"strom.console.write.enable": "true"}).start()
    try:
        setup_topics(b.bootstrap)
        run_console("write", b)
    finally:
        b.cleanup()


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_api_refuses_writes_on_a_read_only_console(live):
    status, body = post(live.http + "/api/topics", {"name": "sneaky", "partitions": 1})
    assert status == 403
    assert "strom.console.write.enable" in body["error"]
    status, _ = post(live.http + "/api/groups/console-g/reset", {"topic": "console-t", "to": "earliest"})
    assert status == 403
    listed = subprocess.run([STROM, "topics", "list", "--bootstrap-server", live.bootstrap],
                            capture_output=True, text=True, check=True).stdout
    assert "sneaky" not in listed
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(live.http + "/api/topics/no-such-topic")
    assert missing.value.code == 404


def test_the_assets_are_served_from_the_binary(live):
    for path, kind in [("/", "text/html"), ("/console.js", "text/javascript"), ("/console.css", "text/css")]:
        with urllib.request.urlopen(live.http + path) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith(kind)
            assert len(r.read()) > 500


def test_a_write_must_be_json_from_the_consoles_own_origin(live):
    plain = urllib.request.Request(live.http + "/api/topics/console-t/delete", data=b"{}", method="POST",
                                   headers={"Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(plain)
    assert refused.value.code == 415
    foreign = urllib.request.Request(live.http + "/api/topics/console-t/delete", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json", "Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(foreign)
    assert refused.value.code == 403
    assert "another origin" in json.loads(refused.value.read())["error"]
