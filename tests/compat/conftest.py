"""Fixtures for the compatibility tests: real `strom` broker processes on ephemeral ports."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STROM = os.environ.get("STROM_BIN", os.path.join(ROOT, "target", "debug", "strom"))


class StromBroker:
    """A `strom broker` process with its own data dir; restartable with SIGTERM or SIGKILL."""

    def __init__(self, extra=None, nofile=None):
        self.dir = tempfile.mkdtemp(prefix="strom-compat-")
        self.extra = dict(extra or {})
        # An open-file limit (soft and hard) for the broker process, as `ulimit -n`.
        self.nofile = nofile
        self.port = 0
        # The HTTP listener (metrics, console), on a free port: its URL once started.
        self.http = None
        self.proc = None
        self.log_path = os.path.join(self.dir, "broker.log")

    def start(self):
        return self.spawn().wait_ready()

    def spawn(self):
        # Port 0 on the first start; the same port on restarts, so clients reconnect.
        overrides = {
            "log.dirs": os.path.join(self.dir, "data"),
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "group.initial.rebalance.delay.ms": "0",
            "strom.http.listener": "http://127.0.0.1:0",
            **self.extra,
        }
        args = [STROM, "broker"]
        for k, v in overrides.items():
            args += ["--override", f"{k}={v}"]
        log = open(self.log_path, "a")
        limit = None
        if self.nofile:
            import resource
            limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=limit)
        return self

    def wait_ready(self, within=30):
        deadline = time.time() + within
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                h = re.search(r"http on (http://[^\s,]+)", line)
                self.http = h.group(1) if h else None
                return self
        raise RuntimeError(f"strom did not start; see {self.log_path}:\n" + open(self.log_path).read()[-3000:])

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        code = self.proc.returncode if self.proc else None
        self.proc = None
        return code

    def restart(self, sig=signal.SIGTERM):
        self.stop(sig)
        return self.start()

    def cleanup(self):
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    """A port free now, below the kernel's ephemeral range (32768 and up), so that no
    outgoing connection takes it before its node binds it (as the Rust cluster harness)."""
    import random
    import socket
    while True:
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def wait_for(what, check, within=60):
    """`check()`'s first true value within `within` seconds, else a failed assertion naming
    `what`."""
    deadline = time.time() + within
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {within} s")


class StromCluster:
    """`n` combined broker-and-controller nodes of one static quorum, each on fixed client
    and controller ports (restarts keep them), with short failure timeouts."""

    FAST = {"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500",
            "replica.lag.time.max.ms": "4000", "replica.fetch.backoff.ms": "200"}

    def __init__(self, n=3, extra=None):
        clients = [free_port() for _ in range(n)]
        controllers = [free_port() for _ in range(n)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, c in enumerate(controllers))
        self.nodes = []
        for i in range(n):
            node = StromBroker(extra={
                "node.id": str(i + 1), "process.roles": "broker,controller",
                "listeners": f"PLAINTEXT://127.0.0.1:{clients[i]},CONTROLLER://127.0.0.1:{controllers[i]}",
                "controller.listener.names": "CONTROLLER", "controller.quorum.voters": voters,
                **self.FAST, **(extra or {})})
            node.port = clients[i]
            self.nodes.append(node)

    def start(self):
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            node.wait_ready(60)
        return self

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id):
        return self.nodes[node_id - 1]

    def live(self):
        return [n for n in self.nodes if n.proc is not None]

    def cleanup(self):
        for n in self.nodes:
            n.cleanup()


@pytest.fixture(scope="module")
def broker():
    b = StromBroker().start()
    yield b
    b.cleanup()


@pytest.fixture
def fresh_broker():
    b = StromBroker().start()
    yield b
    b.cleanup()


# Apache Kafka itself (tests/compat/kafka_ref.py): its shell tools in one shared JVM, and a
# real single-node KRaft broker to compare Strom with.
@pytest.fixture(scope="session")
def kafka_tools():
    if shutil.which("java") is None or shutil.which("mvn") is None:
        pytest.fail("Kafka's own tools need java and mvn (the test machines have both)")
    from kafka_ref import KafkaTools

    tools = KafkaTools()
    yield tools
    tools.close()


@pytest.fixture(scope="module")
def kafka_broker():
    if shutil.which("java") is None or shutil.which("mvn") is None:
        pytest.fail("the reference Kafka broker needs java and mvn (the test machines have both)")
    from kafka_ref import KafkaBroker

    b = KafkaBroker().start()
    yield b
    b.cleanup()
