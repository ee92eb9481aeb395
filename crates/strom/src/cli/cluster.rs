//! `strom cluster describe`: the cluster id, the active controller, the brokers and the
//! metadata quorum.

use super::{print_json, print_table, Common, Output};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller, brokers and the metadata quorum.
    Describe,
}

pub async fn run(cmd: ClusterCommand, common: &Common) -> anyhow::Result<()> {
    let admin = common.admin().await?;
    match cmd {
        ClusterCommand::Describe => {
            let c = admin.describe_cluster().await?;
            // A cluster that does not answer DescribeQuorum (older Kafka) is still described.
            let q = admin.describe_quorum().await;
            let replica = |r: &strom_client::QuorumReplica, role: &str| {
                json!({"node_id": r.replica_id, "role": role, "log_end_offset": r.log_end_offset,
                       "lag": r.lag, "last_fetch_ms": r.last_fetch_ms})
            };
            match common.output {
                Output::Json => print_json(&json!({
                    "cluster_id": c.cluster_id,
                    "controller_id": c.controller_id,
                    "brokers": c.brokers.iter().map(|b| json!({
                        "node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack,
                        "fenced": b.fenced,
                        "controller": q.as_ref().map_or(b.node_id == c.controller_id,
                            |q| q.voters.iter().any(|v| v.replica_id == b.node_id)),
                    })).collect::<Vec<_>>(),
                    "quorum": match &q {
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
                })),
                Output::Table => {
                    // A quorum voter is a controller too (combined mode).
                    let voters: Vec<i32> = match &q {
                        Ok(q) => q.voters.iter().map(|v| v.replica_id).collect(),
                        Err(_) => vec![c.controller_id],
                    };
                    println!("Cluster id: {}", c.cluster_id);
                    println!("Controller: {}", c.controller_id);
                    match &q {
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
                    print_table(
                        &["NODE", "HOST", "PORT", "RACK", "ROLES", "STATUS"],
                        &c.brokers
                            .iter()
                            .map(|b| {
                                vec![
                                    b.node_id.to_string(),
                                    b.host.clone(),
                                    b.port.to_string(),
                                    b.rack.clone().unwrap_or_else(|| "-".into()),
                                    if voters.contains(&b.node_id) {
                                        "broker,controller".into()
                                    } else {
                                        "broker".into()
                                    },
                                    if b.fenced {
                                        "fenced".into()
                                    } else {
                                        "running".into()
                                    },
                                ]
                            })
                            .collect::<Vec<_>>(),
                    );
                    if let Ok(q) = &q {
                        println!();
                        print_table(
                            &["QUORUM-NODE", "ROLE", "LOG-END-OFFSET", "LAG"],
                            &q.voters
                                .iter()
                                .map(|r| (r, "voter"))
                                .chain(q.observers.iter().map(|r| (r, "observer")))
                                .map(|(r, role)| {
                                    vec![
                                        r.replica_id.to_string(),
                                        role.to_string(),
                                        r.log_end_offset.to_string(),
                                        r.lag.to_string(),
                                    ]
                                })
                                .collect::<Vec<_>>(),
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
