//! `strom cluster describe`: the cluster id, the active controller and the brokers.

use super::{print_json, print_table, Common, Output};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller and brokers.
    Describe,
}

pub async fn run(cmd: ClusterCommand, common: &Common) -> anyhow::Result<()> {
    let admin = common.admin().await?;
    match cmd {
        ClusterCommand::Describe => {
            let c = admin.describe_cluster().await?;
            match common.output {
                Output::Json => print_json(&json!({
                    "cluster_id": c.cluster_id,
                    "controller_id": c.controller_id,
                    "brokers": c.brokers.iter().map(|b| json!({
                        "node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack,
                        "fenced": b.fenced, "controller": b.node_id == c.controller_id,
                    })).collect::<Vec<_>>(),
                })),
                Output::Table => {
                    println!("Cluster id: {}", c.cluster_id);
                    println!("Controller: {}", c.controller_id);
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
                                    if b.node_id == c.controller_id {
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
                }
            }
        }
    }
    Ok(())
}
