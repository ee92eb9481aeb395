//! `meta.properties` in each log dir, as Kafka's KRaft writes it: `cluster.id`, `node.id`
//! and, in the metadata log dir, `directory.id` (the quorum's directory id, KIP-853, read by
//! Kafka's `kafka-metadata-quorum add-controller`). A node whose dirs belong to another
//! node or cluster refuses to start.

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use std::path::{Path, PathBuf};

const META_PROPERTIES: &str = "meta.properties";

/// The cluster id in a log dir's `meta.properties`, if it has one (checking it belongs to
/// this node).
fn read(dir: &Path, node_id: i32) -> Result<Option<String>, BrokerError> {
    let path = dir.join(META_PROPERTIES);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bad = |m: String| BrokerError::Config(crate::config::ConfigError(m));
    let props = crate::config::parse_properties(&text)?;
    if let Some(id) = props.get("node.id") {
        if id.trim() != node_id.to_string() {
            return Err(bad(format!(
                "{} belongs to node {id}, but node.id is {node_id}",
                dir.display()
            )));
        }
    }
    props
        .get("cluster.id")
        .map(|id| Some(id.trim().to_string()))
        .ok_or_else(|| bad(format!("{} has no cluster.id", path.display())))
}

/// Writes `meta.properties` durably.
fn write(
    dir: &Path,
    node_id: i32,
    cluster_id: &str,
    directory_id: Option<&str>,
) -> Result<(), BrokerError> {
    let path = dir.join(META_PROPERTIES);
    let mut text = format!("#\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
    if let Some(d) = directory_id {
        text.push_str(&format!("directory.id={d}\n"));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// Records the cluster id in every log dir that lacks it, and the quorum's directory id
/// (`quorum_dir`, a UUID) in the first, the metadata log dir, as Kafka's base64 form.
pub(crate) fn record(
    config: &BrokerConfig,
    cluster_id: &str,
    quorum_dir: &str,
) -> Result<(), BrokerError> {
    let directory_id = uuid::Uuid::parse_str(quorum_dir)
        .ok()
        .map(|u| base64url(u.as_bytes()));
    for (i, path) in config.log_dirs.iter().enumerate() {
        let mine = if i == 0 {
            directory_id.as_deref()
        } else {
            None
        };
        let text = std::fs::read_to_string(path.join(META_PROPERTIES)).ok();
        let has_dir = text.as_deref().is_some_and(|t| t.contains("directory.id="));
        if read(path, config.node_id)?.is_none() || (mine.is_some() && !has_dir) {
            write(path, config.node_id, cluster_id, mine)?;
        }
    }
    Ok(())
}

/// The cluster id the log dirs carry (they must agree), if any has one yet.
pub(crate) fn local_cluster_id(config: &BrokerConfig) -> Result<Option<String>, BrokerError> {
    let mut found: Option<(String, &PathBuf)> = None;
    for path in &config.log_dirs {
        std::fs::create_dir_all(path)?;
        let Some(id) = read(path, config.node_id)? else {
            continue;
        };
        match &found {
            Some((want, first)) if *want != id => {
                return Err(BrokerError::Config(crate::config::ConfigError(format!(
                    "{} belongs to cluster {id}, but {} to cluster {want}",
                    path.display(),
                    first.display()
                ))))
            }
            _ => found = Some((id, path)),
        }
    }
    Ok(found.map(|(id, _)| id))
}

/// Kafka's cluster ids: a UUID in URL-safe base64 without padding.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = super::base64url(&[0u8; 16]);
        assert_eq!(id, "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(super::base64url(&[0xff; 3]), "____");
    }
}
