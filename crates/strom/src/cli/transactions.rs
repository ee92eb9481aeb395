//! `strom transactions list|describe|describe-producers|abort`, as `kafka-transactions.sh`
//! does them.

use super::{print_json, print_table, Common, Output};
use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum TransactionsCommand {
    /// Every transactional id the brokers coordinate, with its state.
    List {
        /// Only transactions in this state (Empty, Ongoing, PrepareCommit, PrepareAbort,
        /// CompleteCommit, CompleteAbort); repeatable.
        #[arg(long = "state")]
        states: Vec<String>,
        /// Only transactional ids this regular expression matches (the whole id).
        #[arg(long = "transactional-id-pattern")]
        pattern: Option<String>,
    },
    /// One transactional id: its producer, state, timeout and partitions.
    Describe {
        #[arg(long = "transactional-id")]
        transactional_id: String,
    },
    /// The producers a partition's leader knows, with their open transaction's start.
    DescribeProducers {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
    },
    /// Abort a hanging transaction in one partition: the one starting at --start-offset, or
    /// the producer named by --producer-id, --producer-epoch and --coordinator-epoch.
    Abort {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        #[arg(long = "start-offset", conflicts_with = "producer_id")]
        start_offset: Option<i64>,
        #[arg(long = "producer-id", requires_all = ["producer_epoch", "coordinator_epoch"])]
        producer_id: Option<i64>,
        #[arg(long = "producer-epoch")]
        producer_epoch: Option<i16>,
        #[arg(long = "coordinator-epoch")]
        coordinator_epoch: Option<i32>,
    },
}

pub async fn run(cmd: TransactionsCommand, common: &Common) -> anyhow::Result<()> {
    let admin = common.admin().await?;
    match cmd {
        TransactionsCommand::List { states, pattern } => {
            let txns = admin.list_transactions(&states, pattern.as_deref()).await?;
            match common.output {
                Output::Json => print_json(&json!(txns
                    .iter()
                    .map(|t| json!({"transactional_id": t.transactional_id, "producer_id": t.producer_id, "state": t.state, "coordinator": t.coordinator}))
                    .collect::<Vec<_>>())),
                Output::Table => print_table(
                    &["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"],
                    &txns
                        .iter()
                        .map(|t| {
                            vec![
                                t.transactional_id.clone(),
                                t.coordinator.to_string(),
                                t.producer_id.to_string(),
                                t.state.clone(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        TransactionsCommand::Describe { transactional_id } => {
            let t = admin.describe_transaction(&transactional_id).await?;
            let partitions: Vec<String> = t
                .partitions
                .iter()
                .map(|(t, p)| format!("{t}-{p}"))
                .collect();
            match common.output {
                Output::Json => print_json(&json!({
                    "transactional_id": t.transactional_id, "producer_id": t.producer_id,
                    "producer_epoch": t.producer_epoch, "state": t.state,
                    "timeout_ms": t.timeout_ms, "start_ms": t.start_ms, "partitions": partitions,
                })),
                Output::Table => print_table(
                    &[
                        "TRANSACTIONAL-ID",
                        "PRODUCER-ID",
                        "PRODUCER-EPOCH",
                        "STATE",
                        "TIMEOUT-MS",
                        "START-MS",
                        "PARTITIONS",
                    ],
                    &[vec![
                        t.transactional_id.clone(),
                        t.producer_id.to_string(),
                        t.producer_epoch.to_string(),
                        t.state.clone(),
                        t.timeout_ms.to_string(),
                        t.start_ms.to_string(),
                        partitions.join(","),
                    ]],
                ),
            }
        }
        TransactionsCommand::DescribeProducers { topic, partition } => {
            let producers = admin.describe_producers(&topic, partition).await?;
            match common.output {
                Output::Json => print_json(&json!(producers
                    .iter()
                    .map(|p| json!({"producer_id": p.producer_id, "producer_epoch": p.producer_epoch, "last_sequence": p.last_sequence, "last_timestamp_ms": p.last_timestamp_ms, "coordinator_epoch": p.coordinator_epoch, "current_transaction_start_offset": p.txn_start_offset}))
                    .collect::<Vec<_>>())),
                Output::Table => print_table(
                    &["PRODUCER-ID", "PRODUCER-EPOCH", "LAST-SEQUENCE", "LAST-TIMESTAMP", "COORDINATOR-EPOCH", "CURRENT-TRANSACTION-START-OFFSET"],
                    &producers
                        .iter()
                        .map(|p| {
                            vec![
                                p.producer_id.to_string(),
                                p.producer_epoch.to_string(),
                                p.last_sequence.to_string(),
                                p.last_timestamp_ms.to_string(),
                                p.coordinator_epoch.to_string(),
                                p.txn_start_offset.to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        TransactionsCommand::Abort {
            topic,
            partition,
            start_offset,
            producer_id,
            producer_epoch,
            coordinator_epoch,
        } => {
            let (pid, epoch, coordinator_epoch) = match (start_offset, producer_id) {
                (Some(offset), _) => {
                    let producers = admin.describe_producers(&topic, partition).await?;
                    let p = producers
                        .iter()
                        .find(|p| p.txn_start_offset == offset)
                        .with_context(|| {
                            format!("no open transaction starts at offset {offset} in {topic}-{partition}")
                        })?;
                    (
                        p.producer_id,
                        p.producer_epoch as i16,
                        p.coordinator_epoch.max(0),
                    )
                }
                (None, Some(pid)) => (
                    pid,
                    producer_epoch.unwrap_or_default(),
                    coordinator_epoch.unwrap_or_default(),
                ),
                (None, None) => anyhow::bail!("abort needs --start-offset or --producer-id"),
            };
            admin
                .abort_transaction((&topic, partition), pid, epoch, coordinator_epoch)
                .await?;
            println!(
                "aborted the transaction of producer {pid} (epoch {epoch}) in {topic}-{partition}"
            );
        }
    }
    Ok(())
}
