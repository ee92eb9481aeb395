//! What Strom's tests share: a blocking connection speaking raw Kafka-protocol frames
//! (requests encoded and responses decoded by the `kafka-protocol` crate), usable against
//! Strom and against a reference Apache Kafka broker alike.

pub mod conn;
pub mod requests;

pub use conn::Conn;
