"""Transactions (exactly-once) with the Java client (Apache Kafka 4.1.2's kafka-clients): a
harness (java/StromJavaTxn.java) compiled with javac commits and aborts transactions and reads
them read_committed and read_uncommitted, checks that a second producer with the same
transactional.id fences the first, and runs consume-transform-produce loops
(sendOffsetsToTransaction with the consumer's group metadata, classic and consumer group
protocols) against one Strom broker."""
import os
import subprocess

from kafka_ref import CLASSPATH, JVM_OPTS, ensure_kafka

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "StromJavaTxn.java")


def test_java_transactions(broker, tmp_path):
    ensure_kafka()
    subprocess.run(["javac", "-nowarn", "-d", str(tmp_path), "-cp", CLASSPATH, SRC], check=True, timeout=300)
    out = subprocess.run(["java", *JVM_OPTS, "-cp", f"{tmp_path}{os.pathsep}{CLASSPATH}", "StromJavaTxn",
                          broker.bootstrap], capture_output=True, text=True, timeout=300)
    print(out.stdout[-6000:], out.stderr[-6000:])
    assert out.returncode == 0, f"StromJavaTxn failed; broker log: {broker.log_path}"
    assert "ALL OK" in out.stdout
