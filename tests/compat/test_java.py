"""The Java client (Apache Kafka 4.1.2's kafka-clients, from Maven Central through
scripts/kafka-install): a harness compiled with javac runs admin calls, a producer per
compression codec, classic and consumer-protocol group consumers against Strom."""
import glob
import os
import subprocess

from kafka_ref import KAFKA_LIB, ensure_kafka

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "StromJavaClient.java")
JARS = ["kafka-clients-*.jar", "lz4-java-*.jar", "snappy-java-*.jar", "zstd-jni-*.jar", "slf4j-api-*.jar"]


def classpath():
    ensure_kafka()
    jars = []
    for pattern in JARS:
        found = glob.glob(os.path.join(KAFKA_LIB, pattern))
        assert found, f"{pattern} missing from {KAFKA_LIB}"
        jars.append(found[0])
    return ":".join(jars)


def test_java_client_round_trip(broker, tmp_path):
    cp = classpath()
    subprocess.run(["javac", "-d", str(tmp_path), "-cp", cp, SRC], check=True, timeout=300)
    out = subprocess.run(["java", "-cp", f"{tmp_path}:{cp}", "StromJavaClient", broker.bootstrap],
                         capture_output=True, text=True, timeout=300)
    print(out.stdout[-3000:], out.stderr[-3000:])
    assert out.returncode == 0
    assert "ALL OK" in out.stdout
