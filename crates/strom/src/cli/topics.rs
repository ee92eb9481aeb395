//! `strom topics create|list|describe|alter|delete`, as `kafka-topics.sh` does them.

use super::{one_name, parse_pairs, print_json, print_table, Common, Output};
use clap::Subcommand;
use serde_json::json;
use strom_client::admin::ConfigEntry;
use strom_client::{NewTopic, OffsetSpec, ResourceType};

#[derive(Subcommand, Debug)]
pub enum TopicsCommand {
    /// Create a topic.
    Create {
        #[arg(value_name = "TOPIC")]
        name: Option<String>,
        #[arg(long)]
        topic: Option<String>,
        /// Partition count (default: the broker's num.partitions).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replica count (default: the broker's default.replication.factor).
        #[arg(long = "replication-factor")]
        replication_factor: Option<i16>,
        /// A topic config, KEY=VALUE; may be repeated or comma-separated.
        #[arg(long = "config")]
        configs: Vec<String>,
        /// Succeed if the topic already exists.
        #[arg(long = "if-not-exists")]
        if_not_exists: bool,
    },
    /// List topic names.
    List {
        /// Include internal topics (`__consumer_offsets`).
        #[arg(long)]
        internal: bool,
        /// List the partitions whose ISR is smaller than their replica set instead (Kafka's
        /// `--under-replicated-partitions`).
        #[arg(long = "under-replicated", alias = "under-replicated-partitions")]
        under_replicated: bool,
    },
    /// Describe topics: partitions with leader, replicas, ISR and log offsets.
    Describe {
        #[arg(value_name = "TOPIC")]
        name: Option<String>,
        /// Only this topic (default: every topic).
        #[arg(long)]
        topic: Option<String>,
    },
    /// Add partitions or change configs.
    Alter {
        #[arg(value_name = "TOPIC")]
        name: Option<String>,
        #[arg(long)]
        topic: Option<String>,
        /// The new, larger, partition count.
        #[arg(long)]
        partitions: Option<i32>,
        /// Set a topic config, KEY=VALUE; may be repeated or comma-separated.
        #[arg(long = "config")]
        configs: Vec<String>,
        /// Remove a topic config (back to the broker default); may be repeated.
        #[arg(long = "delete-config")]
        delete_configs: Vec<String>,
    },
    /// Move partitions between brokers while they serve (Kafka's
    /// `kafka-reassign-partitions`): --generate a plan, --execute, --verify, --cancel,
    /// --list.
    Reassign(super::reassign::ReassignArgs),
    /// Elect leaders (Kafka's `kafka-leader-election`): give partitions back to their
    /// preferred replica, or (`--election-type unclean`) give a leaderless partition any
    /// live replica, losing what only the dead ones held.
    ElectLeaders {
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition of `--topic` (default: all of its partitions).
        #[arg(long)]
        partition: Option<i32>,
        /// Every partition of every topic.
        #[arg(long = "all-topic-partitions")]
        all: bool,
        /// preferred or unclean.
        #[arg(long = "election-type", default_value = "preferred")]
        election_type: String,
    },
    /// Delete a topic.
    Delete {
        #[arg(value_name = "TOPIC")]
        name: Option<String>,
        #[arg(long)]
        topic: Option<String>,
        /// Succeed if the topic does not exist.
        #[arg(long = "if-exists")]
        if_exists: bool,
    },
}

const TOPIC_ALREADY_EXISTS: i16 = 36;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

pub async fn run(cmd: TopicsCommand, common: &Common) -> anyhow::Result<()> {
    let admin = common.admin().await?;
    match cmd {
        TopicsCommand::Create {
            name,
            topic,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
        } => {
            let name = one_name(&topic, &name, "topic")?;
            let new = NewTopic {
                name: name.clone(),
                partitions: partitions.unwrap_or(-1),
                replication_factor: replication_factor.unwrap_or(-1),
                configs: parse_pairs(&configs)?,
            };
            let results = admin.create_topics(&[new]).await?;
            match results.into_iter().next() {
                Some(Ok(())) => {}
                Some(Err(e)) if if_not_exists && e.code() == Some(TOPIC_ALREADY_EXISTS) => {}
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("no result for topic {name}"),
            }
            match common.output {
                Output::Table => println!("Created topic {name}."),
                Output::Json => print_json(&json!({"created": name})),
            }
        }
        TopicsCommand::List {
            internal,
            under_replicated: true,
        } => {
            let md = admin.metadata(None).await?;
            let rows: Vec<_> = md
                .topics
                .values()
                .filter(|t| internal || !t.internal)
                .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
                .filter(|(_, p)| p.isr.len() < p.replicas.len())
                .collect();
            match common.output {
                Output::Json => print_json(&json!(rows
                    .iter()
                    .map(|(t, p)| json!({"topic": t.name, "partition": p.partition,
                        "leader": p.leader, "replicas": p.replicas, "isr": p.isr}))
                    .collect::<Vec<_>>())),
                Output::Table => print_table(
                    &["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"],
                    &rows
                        .iter()
                        .map(|(t, p)| {
                            vec![
                                t.name.clone(),
                                p.partition.to_string(),
                                p.leader.to_string(),
                                ids(&p.replicas),
                                ids(&p.isr),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        TopicsCommand::List { internal, .. } => {
            let md = admin.metadata(None).await?;
            let names: Vec<&String> = md
                .topics
                .values()
                .filter(|t| internal || !t.internal)
                .map(|t| &t.name)
                .collect();
            match common.output {
                Output::Table => names.iter().for_each(|n| println!("{n}")),
                Output::Json => print_json(&json!(names)),
            }
        }
        TopicsCommand::Describe { name, topic } => {
            let only = match (&topic, &name) {
                (None, None) => None,
                _ => Some(vec![one_name(&topic, &name, "topic")?]),
            };
            let md = admin.metadata(only.as_deref()).await?;
            let mut out = Vec::new();
            for t in md.topics.values() {
                if only.is_none() && t.internal {
                    continue;
                }
                if t.error_code != 0 {
                    return Err(strom_client::Error::kafka(
                        t.error_code,
                        format!("topic {}", t.name),
                        None,
                    )
                    .into());
                }
                // A partition with no leader (its brokers fenced) has no offsets to ask for.
                let tps: Vec<(String, i32)> = t
                    .partitions
                    .iter()
                    .filter(|p| p.leader >= 0)
                    .map(|p| (t.name.clone(), p.partition))
                    .collect();
                let start = admin.try_list_offsets(&tps, OffsetSpec::Earliest).await;
                let end = admin.try_list_offsets(&tps, OffsetSpec::Latest).await;
                let configs: Vec<ConfigEntry> = admin
                    .describe_configs(ResourceType::Topic, &t.name)
                    .await?
                    .into_iter()
                    .filter(|c| c.source == "DYNAMIC_TOPIC_CONFIG")
                    .collect();
                out.push((t.clone(), start, end, configs));
            }
            if let Some(names) = &only {
                if out.is_empty() {
                    anyhow::bail!("topic {} does not exist", names[0]);
                }
            }
            match common.output {
                Output::Json => {
                    let v: Vec<_> = out
                        .iter()
                        .map(|(t, start, end, configs)| {
                            json!({
                                "topic": t.name,
                                "topic_id": t.id.to_string(),
                                "partition_count": t.partitions.len(),
                                "replication_factor": t.partitions.first().map_or(0, |p| p.replicas.len()),
                                "configs": configs.iter().map(|c| (c.name.clone(), json!(c.value))).collect::<serde_json::Map<_, _>>(),
                                "partitions": t.partitions.iter().map(|p| json!({
                                    "partition": p.partition,
                                    "leader": p.leader,
                                    "replicas": p.replicas,
                                    "isr": p.isr,
                                    "log_start_offset": start.get(&(t.name.clone(), p.partition)).copied().flatten(),
                                    "log_end_offset": end.get(&(t.name.clone(), p.partition)).copied().flatten(),
                                })).collect::<Vec<_>>(),
                            })
                        })
                        .collect();
                    print_json(&json!(v));
                }
                Output::Table => {
                    for (i, (t, start, end, configs)) in out.iter().enumerate() {
                        if i > 0 {
                            println!();
                        }
                        let configs: Vec<String> = configs
                            .iter()
                            .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("")))
                            .collect();
                        println!(
                            "Topic: {}  TopicId: {}  PartitionCount: {}  ReplicationFactor: {}  Configs: {}",
                            t.name,
                            t.id,
                            t.partitions.len(),
                            t.partitions.first().map_or(0, |p| p.replicas.len()),
                            configs.join(",")
                        );
                        let offset =
                            |m: &std::collections::BTreeMap<(String, i32), Option<i64>>, p: i32| {
                                m.get(&(t.name.clone(), p))
                                    .copied()
                                    .flatten()
                                    .map_or("-".to_string(), |o| o.to_string())
                            };
                        let rows: Vec<Vec<String>> = t
                            .partitions
                            .iter()
                            .map(|p| {
                                vec![
                                    p.partition.to_string(),
                                    if p.leader < 0 {
                                        "none".to_string()
                                    } else {
                                        p.leader.to_string()
                                    },
                                    ids(&p.replicas),
                                    ids(&p.isr),
                                    offset(start, p.partition),
                                    offset(end, p.partition),
                                ]
                            })
                            .collect();
                        print_table(
                            &[
                                "PARTITION",
                                "LEADER",
                                "REPLICAS",
                                "ISR",
                                "LOG-START-OFFSET",
                                "LOG-END-OFFSET",
                            ],
                            &rows,
                        );
                    }
                }
            }
        }
        TopicsCommand::Alter {
            name,
            topic,
            partitions,
            configs,
            delete_configs,
        } => {
            let name = one_name(&topic, &name, "topic")?;
            if partitions.is_none() && configs.is_empty() && delete_configs.is_empty() {
                anyhow::bail!("nothing to alter: give --partitions, --config or --delete-config");
            }
            if let Some(n) = partitions {
                admin.create_partitions(&name, n).await?;
            }
            let ops = super::alter_ops(&configs, &delete_configs)?;
            if !ops.is_empty() {
                admin
                    .alter_configs(ResourceType::Topic, &name, &ops)
                    .await?;
            }
            match common.output {
                Output::Table => println!("Altered topic {name}."),
                Output::Json => print_json(&json!({"altered": name})),
            }
        }
        TopicsCommand::Reassign(args) => super::reassign::run(args, common).await?,
        TopicsCommand::ElectLeaders {
            topic,
            partition,
            all,
            election_type,
        } => elect_leaders(&admin, common, topic, partition, all, &election_type).await?,
        TopicsCommand::Delete {
            name,
            topic,
            if_exists,
        } => {
            let name = one_name(&topic, &name, "topic")?;
            match admin
                .delete_topics(std::slice::from_ref(&name))
                .await?
                .into_iter()
                .next()
            {
                Some(Ok(())) => {}
                Some(Err(e)) if if_exists && e.code() == Some(UNKNOWN_TOPIC_OR_PARTITION) => {}
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("no result for topic {name}"),
            }
            match common.output {
                Output::Table => println!("Deleted topic {name}."),
                Output::Json => print_json(&json!({"deleted": name})),
            }
        }
    }
    Ok(())
}

/// `strom topics elect-leaders`: Kafka's tool's lines, exit 1 if any election failed.
async fn elect_leaders(
    admin: &strom_client::Admin,
    common: &Common,
    topic: Option<String>,
    partition: Option<i32>,
    all: bool,
    election_type: &str,
) -> anyhow::Result<()> {
    use strom_client::admin::ElectionType;
    let kind = match election_type.to_ascii_lowercase().as_str() {
        "preferred" => ElectionType::Preferred,
        "unclean" => ElectionType::Unclean,
        other => anyhow::bail!("--election-type must be preferred or unclean, not {other:?}"),
    };
    let wanted: Option<Vec<(String, i32)>> = match (all, topic, partition) {
        (true, None, None) => None,
        (false, Some(t), Some(p)) => Some(vec![(t, p)]),
        (false, Some(t), None) => {
            let md = admin.metadata(Some(std::slice::from_ref(&t))).await?;
            let info = md
                .topics
                .get(&t)
                .filter(|i| i.error_code == 0)
                .ok_or_else(|| anyhow::anyhow!("topic {t} does not exist"))?;
            Some(
                info.partitions
                    .iter()
                    .map(|p| (t.clone(), p.partition))
                    .collect(),
            )
        }
        _ => anyhow::bail!("give --topic (and maybe --partition), or --all-topic-partitions"),
    };
    let results = admin.elect_leaders(kind, wanted.as_deref()).await?;
    const ELECTION_NOT_NEEDED: i16 = 84;
    let failed = results
        .iter()
        .any(|(_, code, _)| *code != 0 && *code != ELECTION_NOT_NEEDED);
    match common.output {
        Output::Json => print_json(&json!(results
            .iter()
            .map(|((t, p), code, message)| json!({"topic": t, "partition": p,
                "error_code": code, "error_message": message}))
            .collect::<Vec<_>>())),
        Output::Table => {
            let names = |ok: &dyn Fn(i16) -> bool| -> String {
                let v: Vec<String> = results
                    .iter()
                    .filter(|(_, c, _)| ok(*c))
                    .map(|((t, p), _, _)| format!("{t}-{p}"))
                    .collect();
                v.join(", ")
            };
            let elected = names(&|c| c == 0);
            if !elected.is_empty() {
                println!("Successfully completed leader election ({election_type}) for partitions {elected}");
            }
            let valid = names(&|c| c == ELECTION_NOT_NEEDED);
            if !valid.is_empty() {
                println!("Valid replica already elected for partitions {valid}");
            }
            for ((t, p), code, message) in &results {
                if *code != 0 && *code != ELECTION_NOT_NEEDED {
                    let m = message.clone().unwrap_or_default();
                    println!("Error completing leader election for partition {t}-{p}: {m} (error {code})");
                }
            }
        }
    }
    if failed {
        anyhow::bail!("leader election failed for some partitions");
    }
    Ok(())
}

fn ids(v: &[i32]) -> String {
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}
