"""Starting the binary the way operators do: a minimal properties file, Kafka's own
server.properties, and mistakes that must stop start-up with one line naming the key."""
import os
import socket
import subprocess

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
    port = free_port()
    proc = run_with(text, tmp_path, ["--override", f"log.dirs={tmp_path}/data",
                                     "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}"])
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
