//! `meta.properties` in each log dir, as Kafka's KRaft writes it: `cluster.id`, `node.id`
//! and `directory.id` (in the metadata log dir, the quorum's directory id, KIP-853, read by
//! Kafka's `kafka-metadata-quorum add-controller`; brokers register their dirs' ids). A node whose dirs belong to another
//! node or cluster refuses to start.

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use std::path::{Path, PathBuf};

const META_PROPERTIES: &str = "meta.properties";

/// The cluster id in a log dir's `meta.properties`, if it has one (checking it belongs to
/// this node).
fn read(dir: &Path, node_id: i32) -> Result<Option<String>, BrokerError> {
    let path = dir.join(META_PROPERTIES);
    let Some(props) = properties(dir)? else {
        return Ok(None);
    };
    let bad = |m: String| BrokerError::Config(crate::config::ConfigError(m));
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

/// Each log dir's directory id: the first's is the metadata quorum's (`quorum_dir`); the
/// others' are read from their `meta.properties`, or new (and written with the cluster id).
pub(crate) fn log_dir_ids(
    config: &BrokerConfig,
    quorum_dir: &str,
) -> Result<Vec<uuid::Uuid>, BrokerError> {
    let mut ids = Vec::new();
    for (i, path) in config.log_dirs.iter().enumerate() {
        let given = if i == 0 {
            uuid::Uuid::parse_str(quorum_dir).ok()
        } else {
            properties(path)?
                .and_then(|p| p.get("directory.id").cloned())
                .and_then(|d| parse_directory_id(d.trim()).ok())
        };
        ids.push(given.unwrap_or_else(random_uuid));
    }
    Ok(ids)
}

/// Records the cluster id, and each dir's directory id (`ids`, in Kafka's base64 form), in
/// every log dir whose `meta.properties` lacks them.
pub(crate) fn record(
    config: &BrokerConfig,
    cluster_id: &str,
    ids: &[uuid::Uuid],
) -> Result<(), BrokerError> {
    for (path, id) in config.log_dirs.iter().zip(ids) {
        let has_dir = properties(path)?.is_some_and(|p| p.contains_key("directory.id"));
        if read(path, config.node_id)?.is_none() || !has_dir {
            write(
                path,
                config.node_id,
                cluster_id,
                Some(&base64url(id.as_bytes())),
            )?;
        }
    }
    Ok(())
}

/// A dir's `meta.properties`, if it has one.
fn properties(
    dir: &Path,
) -> Result<Option<std::collections::BTreeMap<String, String>>, BrokerError> {
    match std::fs::read_to_string(dir.join(META_PROPERTIES)) {
        Ok(text) => Ok(Some(crate::config::parse_properties(&text)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A directory id as a UUID or in Kafka's form (URL-safe base64, as `meta.properties`'s
/// `directory.id` and `kafka-metadata-quorum` show it).
pub fn parse_directory_id(s: &str) -> Result<uuid::Uuid, String> {
    if let Ok(u) = uuid::Uuid::parse_str(s) {
        return Ok(u);
    }
    let digit = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bits = s
        .trim_end_matches('=')
        .bytes()
        .try_fold(Vec::new(), |mut v, c| {
            v.push(digit(c)?);
            Some(v)
        });
    match bits {
        // 22 digits are 132 bits: the 128 of the id, then 4 of padding.
        Some(d) if d.len() == 22 && d[21] & 0xf == 0 => {
            let head = d[..21].iter().fold(0u128, |n, x| (n << 6) | u128::from(*x));
            Ok(uuid::Uuid::from_u128((head << 2) | u128::from(d[21] >> 4)))
        }
        _ => Err(format!(
            "{s:?} is not a directory id (a UUID or Kafka's base64 form)"
        )),
    }
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
/// A random id as Kafka makes one (`Uuid.randomUuid`): never zero or the metadata topic's
/// id (1), and never one whose base64 form starts with `-`, which Kafka's tools would take
/// for an option (`kafka-metadata-quorum remove-controller --controller-directory-id -x..`).
pub fn random_uuid() -> uuid::Uuid {
    loop {
        let id = uuid::Uuid::new_v4();
        if id.as_u128() > 1 && id.as_bytes()[0] >> 2 != 62 {
            return id;
        }
    }
}

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

    #[test]
    fn random_ids_never_read_as_an_option_in_kafkas_tools() {
        // One id in 64 would start with `-` if drawn freely.
        for _ in 0..20_000 {
            let id = super::random_uuid();
            assert!(!super::base64url(id.as_bytes()).starts_with('-'), "{id}");
            assert!(id.as_u128() > 1);
        }
        assert!(
            super::base64url(&[0xf8, 0, 0]).starts_with('-'),
            "the first 6 bits are 62"
        );
    }
}

#[cfg(test)]
mod dir_id_tests {
    use super::*;

    #[test]
    fn each_log_dir_keeps_its_directory_id() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = format!(
            "{},{}",
            tmp.path().join("a").display(),
            tmp.path().join("b").display()
        );
        let props = [("log.dirs".to_string(), dirs)].into_iter().collect();
        let (config, _) = BrokerConfig::from_properties(&props).unwrap();
        for d in &config.log_dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        let quorum = uuid::Uuid::from_u128(42);
        let ids = log_dir_ids(&config, &quorum.to_string()).unwrap();
        assert_eq!(ids[0], quorum, "the metadata dir's is the quorum's");
        record(&config, "AAAAAAAAAAAAAAAAAAAAAA", &ids).unwrap();
        assert_eq!(
            log_dir_ids(&config, &quorum.to_string()).unwrap(),
            ids,
            "kept"
        );
        let text = std::fs::read_to_string(config.log_dirs[1].join(META_PROPERTIES)).unwrap();
        assert!(text.contains(&format!("directory.id={}", base64url(ids[1].as_bytes()))));
        assert_eq!(
            parse_directory_id(&base64url(ids[1].as_bytes())),
            Ok(ids[1])
        );
    }
}
