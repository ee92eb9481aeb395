"""Apache Kafka 4.1 itself, for the compat tests: its shell tools, run in one long-lived JVM
(`KafkaTools`, over java/KafkaToolServer.java), and a real single-node KRaft broker
(`KafkaBroker`) to compare Strom with. The jars come from Maven Central through
scripts/kafka-install (cached under target/kafka/lib); the script name -> class table is
scripts/kafka/tools.tsv, shared with scripts/kafka-tool."""
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KAFKA_DIR = os.path.join(ROOT, "target", "kafka")
KAFKA_LIB = os.path.join(KAFKA_DIR, "lib")
CLASSPATH = os.path.join(KAFKA_LIB, "*")
LOG4J2 = os.path.join(ROOT, "scripts", "kafka", "log4j2.xml")
TOOLS_TSV = os.path.join(ROOT, "scripts", "kafka", "tools.tsv")
SERVER_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "KafkaToolServer.java")
# Small heap, one GC thread, C1 only: these JVMs live for a test module and do little work.
JVM_OPTS = ["-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2}"]
# Tools that call System.exit themselves (or are servers): run as their own process.
OWN_PROCESS = {"kafka-verifiable-producer", "kafka-verifiable-consumer", "kafka-server-start"}

_install_lock = threading.Lock()
_installed = False


def ensure_kafka():
    """Kafka's jars in KAFKA_LIB (downloads only the first time, or after the pom changes)."""
    global _installed
    with _install_lock:
        if not _installed:
            subprocess.run([os.path.join(ROOT, "scripts", "kafka-install")], check=True, timeout=900)
            _installed = True
    return KAFKA_LIB


def tool_classes():
    """Kafka's script names (without .sh) -> the main class each one runs."""
    table = {}
    with open(TOOLS_TSV) as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                name, cls = line.split("\t")
                table[name] = cls
    return table


def tool_class(script_name):
    name = os.path.basename(script_name)
    if name.endswith(".sh"):
        name = name[:-3]
    table = tool_classes()
    if name not in table:
        raise KeyError(f"no Kafka tool named {script_name} in {TOOLS_TSV}")
    return name, table[name]


def _compile_server():
    """KafkaToolServer compiled into target/kafka/toolserver, once per version of its source."""
    ensure_kafka()
    out = os.path.join(KAFKA_DIR, "toolserver")
    with open(SERVER_SRC, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(out, "stamp")
    if os.path.exists(stamp) and open(stamp).read() == digest:
        return out
    tmp = out + f".tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    subprocess.run(["javac", "-nowarn", "-Xlint:-removal", "-d", tmp, "-cp", CLASSPATH, SERVER_SRC],
                   check=True, timeout=300)
    with open(os.path.join(tmp, "stamp"), "w") as f:
        f.write(digest)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    return out


class KafkaTools:
    """Kafka's shell tools by script name, each run in one shared JVM:
    `rc, out, err = tools.run("kafka-topics", "--bootstrap-server", b, "--list")`."""

    def __init__(self):
        self.classes_dir = _compile_server()
        self.proc = None
        self.lock = threading.Lock()
        self.next_id = 0
        self.log_path = os.path.join(KAFKA_DIR, "toolserver.log")
        self.runs = []  # (script, seconds) per run, for reports

    def _start(self):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            ["java", *JVM_OPTS, "-cp", f"{self.classes_dir}{os.pathsep}{CLASSPATH}", "KafkaToolServer"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, encoding="utf-8")
        log.close()
        ready = self.proc.stdout.readline()
        if '"ready"' not in ready:
            raise RuntimeError(f"KafkaToolServer did not start; see {self.log_path}")

    def _request(self, req):
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            self.next_id += 1
            req = {"id": self.next_id, **req}
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            if not line:
                self.proc = None
                raise RuntimeError(f"KafkaToolServer died on {req}; see {self.log_path}")
            return json.loads(line)

    def run(self, script_name, *args, input=None, timeout=60):
        """Runs a Kafka tool: (exit code, stdout, stderr). rc 124 means it timed out."""
        name, cls = tool_class(script_name)
        args = [str(a) for a in args]
        start = time.time()
        try:
            if name in OWN_PROCESS:
                return self._run_process(cls, args, input, timeout)
            reply = self._request({"class": cls, "args": args, "input": input, "timeout": timeout})
            return reply["rc"], reply["out"], reply["err"]
        finally:
            self.runs.append((name, time.time() - start))

    def start(self, script_name, *args, input=None):
        """Starts a Kafka tool in the background (a console consumer that stays in its group,
        say); `.wait(timeout)` on what this returns gives (rc, out, err) as `run` does."""
        name, cls = tool_class(script_name)
        reply = self._request({"class": cls, "args": [str(a) for a in args], "input": input,
                               "background": True})
        if not reply.get("started"):
            raise RuntimeError(f"{name} did not start: {reply}")
        return _Background(self, reply["id"])

    def _run_process(self, cls, args, input, timeout):
        try:
            p = subprocess.run(["java", *JVM_OPTS, "-cp", CLASSPATH, cls, *args], input=input or "",
                               capture_output=True, text=True, timeout=timeout)
            return p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            return 124, e.stdout or "", e.stderr or ""

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class _Background:
    def __init__(self, tools, id):
        self.tools, self.id = tools, id

    def wait(self, timeout=60):
        reply = self.tools._request({"wait": self.id, "timeout": timeout})
        return reply["rc"], reply["out"], reply["err"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metadata_brokers(host, port, timeout=2.0):
    """Broker ids in a Metadata v1 response (empty until the broker is registered and unfenced)."""
    client = b"strom-compat"
    body = struct.pack(">hhih", 3, 1, 1, len(client)) + client + struct.pack(">i", -1)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        head = _recv(s, 4)
        data = _recv(s, struct.unpack(">i", head)[0])
    pos = 4  # correlation id
    (n,) = struct.unpack_from(">i", data, pos)
    pos += 4
    ids = []
    for _ in range(n):
        (node,) = struct.unpack_from(">i", data, pos)
        ids.append(node)
        pos += 4
        (hlen,) = struct.unpack_from(">h", data, pos)
        pos += 2 + hlen + 4
        (rlen,) = struct.unpack_from(">h", data, pos)
        pos += 2 + max(rlen, 0)
    return ids


def _recv(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


class KafkaBroker:
    """A real Apache Kafka 4.1 broker: one KRaft node (broker and controller, node.id=1) in a
    temporary dir, on 127.0.0.1 ephemeral ports, with settings for tests."""

    def __init__(self, extra=None):
        ensure_kafka()
        self.dir = tempfile.mkdtemp(prefix="kafka-ref-")
        self.extra = dict(extra or {})
        self.port = free_port()
        self.controller_port = free_port()
        self.proc = None
        self.log_path = os.path.join(self.dir, "broker.log")
        self.config_path = os.path.join(self.dir, "server.properties")
        self.data_dir = os.path.join(self.dir, "data")
        self.start_seconds = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def properties(self):
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.data_dir,
            "num.partitions": "1",
            "offsets.topic.num.partitions": "3",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            **self.extra,
        }

    def start(self, timeout=90):
        t0 = time.time()
        with open(self.config_path, "w") as f:
            for k, v in self.properties().items():
                f.write(f"{k}={v}\n")
        if not os.path.exists(os.path.join(self.data_dir, "meta.properties")):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(
                ["java", *JVM_OPTS, "-cp", CLASSPATH, "kafka.tools.StorageTool", "format", "--standalone",
                 "-t", cluster_id, "-c", self.config_path],
                capture_output=True, text=True, timeout=120)
            if fmt.returncode != 0:
                raise RuntimeError(f"kafka-storage format failed:\n{fmt.stdout}\n{fmt.stderr}")
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            ["java", "-Xmx512m", "-Xms128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={LOG4J2}",
             "-cp", CLASSPATH, "kafka.Kafka", self.config_path],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = t0 + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if metadata_brokers("127.0.0.1", self.port):
                    self.start_seconds = time.time() - t0
                    return self
            except (OSError, struct.error):
                pass
            time.sleep(0.2)
        log_tail = open(self.log_path).read()[-3000:]
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"Kafka did not start in {timeout}s; {self.log_path}:\n{log_tail}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode if self.proc else None
        self.proc = None
        return code

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
