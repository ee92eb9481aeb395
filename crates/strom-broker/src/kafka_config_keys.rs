//! Every broker configuration key Apache Kafka 3.x and 4.x define (placeholder until filled).

pub const KAFKA_BROKER_KEYS: &[&str] = &["num.network.threads", "zookeeper.connect"];
pub const KAFKA_BROKER_KEY_PREFIXES: &[&str] = &["listener.name."];
