//! `strom cluster describe`: the cluster id, the active controller, the brokers and the
//! metadata quorum; `strom cluster add-voter | remove-voter`: a dynamic quorum's voters
//! (KIP-853, as Kafka's `kafka-metadata-quorum add-controller | remove-controller`).

use super::{print_json, print_table, Common, Output};
use clap::Subcommand;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller, brokers and the metadata quorum.
    Describe,
    /// Make an observer of a dynamic quorum (a started controller) a voter.
    AddVoter {
        /// The node's id.
        #[arg(long)]
        node_id: i32,
        /// Its metadata log directory id (`strom cluster describe` lists observers with
        /// theirs). Default: the one the quorum lists for the node.
        #[arg(long, value_parser = parse_directory_id)]
        directory_id: Option<uuid::Uuid>,
        /// Where the other voters reach it, `host:port` (default: where it observes from).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Remove a voter from a dynamic quorum.
    RemoveVoter {
        #[arg(long)]
        node_id: i32,
        /// Default: the one the quorum lists for the node.
        #[arg(long, value_parser = parse_directory_id)]
        directory_id: Option<uuid::Uuid>,
    },
}

pub async fn run(cmd: ClusterCommand, common: &Common) -> anyhow::Result<()> {
    let admin = common.admin().await?;
    match cmd {
        ClusterCommand::AddVoter {
            node_id,
            directory_id,
            endpoint,
        } => {
            let dir = directory_of(&admin, node_id, directory_id).await?;
            let endpoint = endpoint.map(|e| parse_endpoint(&e)).transpose()?;
            let at = endpoint
                .as_ref()
                .map(|(h, p)| ("CONTROLLER", h.as_str(), *p));
            admin.add_raft_voter(node_id, dir, at).await?;
            println!("Node {node_id} is a voter.");
        }
        ClusterCommand::RemoveVoter {
            node_id,
            directory_id,
        } => {
            let dir = directory_of(&admin, node_id, directory_id).await?;
            admin.remove_raft_voter(node_id, dir).await?;
            println!("Node {node_id} is no longer a voter.");
        }
        ClusterCommand::Describe => describe(&admin, common).await?,
    }
    Ok(())
}

/// A directory id as a UUID or in Kafka's form.
fn parse_directory_id(s: &str) -> Result<uuid::Uuid, String> {
    strom_broker::meta_properties::parse_directory_id(s)
}

/// `host:port`.
fn parse_endpoint(e: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = e
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--endpoint {e:?}: expected host:port"))?;
    let port = port
        .parse()
        .map_err(|_| anyhow::anyhow!("--endpoint {e:?}: {port:?} is not a port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// The directory given, else the one the quorum lists for the node.
async fn directory_of(
    admin: &strom_client::Admin,
    node_id: i32,
    given: Option<uuid::Uuid>,
) -> anyhow::Result<uuid::Uuid> {
    if let Some(d) = given {
        return Ok(d);
    }
    let q = admin.describe_quorum().await?;
    let listed = q
        .voters
        .iter()
        .chain(&q.observers)
        .find(|r| r.replica_id == node_id)
        .ok_or_else(|| anyhow::anyhow!("node {node_id} is not in the metadata quorum"))?;
    uuid::Uuid::parse_str(&listed.directory_id).map_err(|_| {
        anyhow::anyhow!("the quorum lists no directory id for node {node_id}: give --directory-id")
    })
}

async fn describe(admin: &strom_client::Admin, common: &Common) -> anyhow::Result<()> {
    let c = admin.describe_cluster().await?;
    // A cluster that does not answer DescribeQuorum (older Kafka) is still described.
    let q = admin.describe_quorum().await;
    let http = http_listeners(admin, &c).await;
    match common.output {
        Output::Json => print_json(&describe_json(&c, &q, &http)),
        Output::Table => describe_table(&c, &q, &http),
    }
    Ok(())
}

/// Each live broker's HTTP listener (metrics, console), as it describes its
/// `strom.http.listener`: empty when off, absent when it could not tell (not Strom).
async fn http_listeners(
    admin: &strom_client::Admin,
    c: &strom_client::ClusterDescription,
) -> BTreeMap<i32, String> {
    let mut out = BTreeMap::new();
    for b in c.brokers.iter().filter(|b| !b.fenced) {
        let described = admin
            .describe_configs(strom_client::ResourceType::Broker, &b.node_id.to_string())
            .await;
        let url = described.ok().and_then(|entries| {
            entries
                .into_iter()
                .find(|e| e.name == "strom.http.listener")
                .and_then(|e| e.value)
        });
        if let Some(url) = url {
            out.insert(b.node_id, url);
        }
    }
    out
}

type Quorum = strom_client::Result<strom_client::QuorumDescription>;

fn describe_json(
    c: &strom_client::ClusterDescription,
    q: &Quorum,
    http: &BTreeMap<i32, String>,
) -> serde_json::Value {
    let replica = |r: &strom_client::QuorumReplica, role: &str| {
        json!({"node_id": r.replica_id, "role": role, "log_end_offset": r.log_end_offset,
               "lag": r.lag, "last_fetch_ms": r.last_fetch_ms,
               "directory_id": r.directory_id})
    };
    json!({
        "cluster_id": c.cluster_id,
        "controller_id": c.controller_id,
        "brokers": c.brokers.iter().map(|b| json!({
            "node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack,
            "fenced": b.fenced,
            "controller": q.as_ref().map_or(b.node_id == c.controller_id,
                |q| q.voters.iter().any(|v| v.replica_id == b.node_id)),
            "http": http.get(&b.node_id).filter(|u| !u.is_empty()),
        })).collect::<Vec<_>>(),
        "quorum": match q {
            Ok(q) => json!({
                "leader_id": q.leader_id,
                "leader_epoch": q.leader_epoch,
                "high_watermark": q.high_watermark,
                "replicas": q.voters.iter().map(|r| replica(r, "voter"))
                    .chain(q.observers.iter().map(|r| replica(r, "observer")))
                    .collect::<Vec<_>>(),
            }),
            Err(e) => json!({"error": e.to_string()}),
        },
    })
}

fn describe_table(c: &strom_client::ClusterDescription, q: &Quorum, http: &BTreeMap<i32, String>) {
    // A quorum voter is a controller too (combined mode).
    let voters: Vec<i32> = match q {
        Ok(q) => q.voters.iter().map(|v| v.replica_id).collect(),
        Err(_) => vec![c.controller_id],
    };
    println!("Cluster id: {}", c.cluster_id);
    println!("Controller: {}", c.controller_id);
    match q {
        Ok(q) => println!(
            "Quorum:     leader {}, epoch {}, high watermark {}, {} voter(s), {} observer(s)",
            q.leader_id,
            q.leader_epoch,
            q.high_watermark,
            q.voters.len(),
            q.observers.len()
        ),
        Err(e) => println!("Quorum:     unavailable ({e})"),
    }
    let row = |b: &strom_client::ClusterBroker| {
        let roles = match voters.contains(&b.node_id) {
            true => "broker,controller",
            false => "broker",
        };
        let status = if b.fenced { "fenced" } else { "running" };
        let url = http.get(&b.node_id).filter(|u| !u.is_empty());
        vec![
            b.node_id.to_string(),
            b.host.clone(),
            b.port.to_string(),
            b.rack.clone().unwrap_or_else(|| "-".into()),
            roles.into(),
            status.into(),
            url.cloned().unwrap_or_else(|| "-".into()),
        ]
    };
    print_table(
        &["NODE", "HOST", "PORT", "RACK", "ROLES", "STATUS", "HTTP"],
        &c.brokers.iter().map(row).collect::<Vec<_>>(),
    );
    if let Ok(q) = q {
        println!();
        let rows: Vec<Vec<String>> = q
            .voters
            .iter()
            .map(|r| (r, "voter"))
            .chain(q.observers.iter().map(|r| (r, "observer")))
            .map(|(r, role)| {
                vec![
                    r.replica_id.to_string(),
                    role.to_string(),
                    r.log_end_offset.to_string(),
                    r.lag.to_string(),
                    r.directory_id.clone(),
                ]
            })
            .collect();
        print_table(
            &[
                "QUORUM-NODE",
                "ROLE",
                "LOG-END-OFFSET",
                "LAG",
                "DIRECTORY-ID",
            ],
            &rows,
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn directory_ids_are_read_as_uuids_or_in_kafkas_form() {
        let u = uuid::Uuid::parse_str("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
        assert_eq!(super::parse_directory_id("Dx4tPEtaaXiHlqW0w9Lh8A"), Ok(u));
        assert_eq!(super::parse_directory_id(&u.to_string()), Ok(u));
        assert!(super::parse_directory_id("Dx4tPEta").is_err());
        // A top nibble set (Kafka's form of ff..ff is "_____________________w").
        assert_eq!(
            super::parse_directory_id("_____________________w"),
            Ok(uuid::Uuid::from_u128(u128::MAX))
        );
        assert!(super::parse_directory_id("not!a!directory!id!!!!").is_err());
    }
}
