//! The openraft type configuration of Strom's metadata quorum: node ids are `u64` (Kafka's
//! `node.id`), a node is its controller listener address, a request is an opaque byte
//! string (the broker's encoded metadata records) and the snapshot travels as bytes in memory.

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::io::Cursor;

/// The address of a quorum voter or learner: its controller listener.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QuorumNode {
    /// Host name or IP address.
    pub host: String,
    /// Port of the controller listener.
    pub port: u16,
    /// The voter's metadata log directory id (KIP-853): a node whose disk was wiped comes
    /// back with a new one, and calls addressed to the old one are refused. Empty: not
    /// known (a quorum formed before directory ids).
    #[serde(default)]
    pub directory_id: String,
}

impl QuorumNode {
    /// A node at `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> QuorumNode {
        QuorumNode {
            host: host.into(),
            port,
            directory_id: String::new(),
        }
    }

    /// This node with its directory id.
    pub fn with_directory(mut self, directory_id: impl Into<String>) -> QuorumNode {
        self.directory_id = directory_id.into();
        self
    }
}

impl fmt::Display for QuorumNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// One client request: opaque bytes the broker encodes its metadata records into.
///
/// Serialized (inside an entry's JSON) as a JSON string when the bytes are UTF-8 — Strom's
/// metadata records are JSON, so this is the usual case and stays readable with any
/// consumer — and as an array of byte values otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Payload(pub Vec<u8>);

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => self.0.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PayloadVisitor)
    }
}

/// Accepts what `Payload::serialize` writes: a string or a sequence of bytes.
struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of bytes")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Payload, E> {
        Ok(Payload(v.as_bytes().to_vec()))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Payload, E> {
        Ok(Payload(v.to_vec()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(Payload(out))
    }
}

openraft::declare_raft_types!(
    /// Strom's metadata quorum types.
    pub TypeConfig:
        D = Payload,
        R = (),
        NodeId = u64,
        Node = QuorumNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A raft log entry of the quorum.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id (leader id and index).
pub type LogId = openraft::LogId<u64>;
/// A vote (term, node, committed).
pub type Vote = openraft::Vote<u64>;
/// A storage error as openraft wants it.
pub type StorageError = openraft::StorageError<u64>;
/// Membership with the log id that introduced it.
pub type StoredMembership = openraft::StoredMembership<u64, QuorumNode>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<u64, QuorumNode>;
/// A raft node of the quorum.
pub type Raft = openraft::Raft<TypeConfig>;
