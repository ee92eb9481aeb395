"""The Java client (kafka-clients from the PyPI wheel shigawire-apache-flink-libraries, under
pyflink/lib/): a harness compiled with javac runs admin calls, a producer per compression
codec and a consumer round trip against Strom."""
import os
import subprocess

import sysconfig

# pyflink is a namespace package here (no __init__.py): find lib/ in site-packages.
LIB = os.path.join(sysconfig.get_paths()["purelib"], "pyflink", "lib")
JARS = ["kafka-clients.jar", "lz4-java.jar", "snappy-java.jar", "zstd-jni.jar", "slf4j-api.jar"]
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "StromJavaClient.java")


def test_java_client_round_trip(broker, tmp_path):
    cp = ":".join(os.path.join(LIB, j) for j in JARS)
    subprocess.run(["javac", "-d", str(tmp_path), "-cp", cp, SRC], check=True, timeout=300)
    out = subprocess.run(["java", "-cp", f"{tmp_path}:{cp}", "StromJavaClient", broker.bootstrap],
                         capture_output=True, text=True, timeout=300)
    print(out.stdout[-3000:], out.stderr[-3000:])
    assert out.returncode == 0
    assert "ALL OK" in out.stdout
