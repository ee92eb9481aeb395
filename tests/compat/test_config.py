"""Starting the binary the way operators do: a minimal properties file, Kafka's own
server.properties, and mistakes that must stop start-up with one line naming the key."""
import os
import socket
import subprocess
import time

from conftest import STROM

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "crates", "strom-broker", "tests", "fixtures")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_with(props_text, tmp_path, extra_args=()):
    path = tmp_path / "server.properties"
    path.write_text(props_text)
    return subprocess.Popen([STROM, "broker", "--config", str(path), *extra_args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(proc):
    line = proc.stdout.readline()
    assert "ready" in line, line + proc.stderr.read()


def test_a_file_with_four_keys_is_a_working_node(tmp_path):
    port = free_port()
    proc = run_with(f"node.id=7\nlisteners=PLAINTEXT://127.0.0.1:{port}\n"
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={tmp_path}/data\n", tmp_path)
    try:
        wait_ready(proc)
        bs = f"127.0.0.1:{port}"
        subprocess.run(["kcat", "-b", bs, "-P", "-t", "four", "-K:"], input="k:v\n", text=True, check=True, timeout=30)
        out = subprocess.run(["kcat", "-b", bs, "-C", "-t", "four", "-e", "-f", "%k=%s\\n"],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        assert out == "k=v\n"
        meta = subprocess.run(["kcat", "-b", bs, "-L"], capture_output=True, text=True, timeout=30).stdout
        assert f"broker 7 at 127.0.0.1:{port}" in meta
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_kafkas_own_server_properties_start_strom(tmp_path):
    text = open(os.path.join(FIXTURES, "kafka-server.properties")).read()
    port, controller = free_port(), free_port()
    # Free ports for the file's two listeners: clients, and the quorum's controller listener.
    listeners = f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"
    proc = run_with(text, tmp_path, ["--override", f"log.dirs={tmp_path}/data",
                                     "--override", f"listeners={listeners}"])
    try:
        wait_ready(proc)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    assert "ignored" in proc.stderr.read(), "keys Strom has no use for are logged as ignored"


def test_config_mistakes_stop_start_up_with_one_line(tmp_path):
    for text, key in [("log.retension.hours=1\n", "log.retension.hours"),
                      ("num.partitions=many\n", "num.partitions"),
                      ("log.segment.bytes=1\n", "log.segment.bytes"),
                      ("listeners=SSL://:9093\n", "SSL")]:
        proc = run_with(text + f"log.dirs={tmp_path}/data\n", tmp_path)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1, (text, err)
        lines = [l for l in err.splitlines() if l.startswith("strom:")]
        assert len(lines) == 1 and key in lines[0], err
        assert "panicked" not in err
    proc = subprocess.run([STROM, "broker", "--bogus-flag"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "Usage" in proc.stderr


def test_several_log_dirs_share_the_partitions(tmp_path):
    """log.dirs with two directories (JBOD): new partitions go to the dir with fewer, every
    dir is listed by DescribeLogDirs, and all of it survives a restart."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka.admin import KafkaAdminClient
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    port = free_port()
    text = f"listeners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={a_dir},{b_dir}\n"
    proc = run_with(text, tmp_path)
    bs = f"127.0.0.1:{port}"
    try:
        wait_ready(proc)
        admin = AdminClient({"bootstrap.servers": bs})
        admin.create_topics([NewTopic("jbod", num_partitions=6, replication_factor=1)])["jbod"].result(30)
        in_a = sorted(p for p in os.listdir(a_dir) if p.startswith("jbod-"))
        in_b = sorted(p for p in os.listdir(b_dir) if p.startswith("jbod-"))
        # The first dir also holds the metadata log and may hold one fewer.
        assert len(in_a) + len(in_b) == 6 and abs(len(in_a) - len(in_b)) <= 1, (in_a, in_b)
        assert (a_dir / "meta.properties").exists() and (b_dir / "meta.properties").exists()
        p = Producer({"bootstrap.servers": bs, "acks": "all"})
        for i in range(600):
            p.produce("jbod", key=str(i), value=str(i))
        assert p.flush(30) == 0
        k = KafkaAdminClient(bootstrap_servers=bs)
        dirs = {d["log_dir"]: d for d in k.describe_log_dirs()[0]["log_dirs"]}
        k.close()
        assert set(dirs) == {str(a_dir), str(b_dir)}, dirs
        listed = {d: sorted(p["partition_index"] for t in dirs[d]["topics"] if t["name"] == "jbod"
                            for p in t["partitions"]) for d in dirs}
        assert sorted(listed[str(a_dir)] + listed[str(b_dir)]) == list(range(6)), listed
        assert len(listed[str(b_dir)]) == len(in_b), (listed, in_b)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    proc = run_with(text, tmp_path)
    try:
        wait_ready(proc)
        c = Consumer({"bootstrap.servers": bs, "group.id": "jbod", "auto.offset.reset": "earliest"})
        c.subscribe(["jbod"])
        got = set()
        deadline = time.time() + 60
        while len(got) < 600 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.add(m.value().decode())
        c.close()
        assert got == {str(i) for i in range(600)}
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    # The same directory twice is a start-up error naming it.
    proc = run_with(f"log.dirs={a_dir},{a_dir}\n", tmp_path)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "twice" in err, err
