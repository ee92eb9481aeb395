//! The operator commands (`strom topics|produce|consume|groups|configs|cluster|perf`), built on
//! `strom-client`. Shared here: connecting, and printing human tables or `--output json`.

pub mod cluster;
pub mod configs;
pub mod consume;
pub mod groups;
pub mod perf;
pub mod produce;
pub mod reassign;
pub mod topics;
pub mod transactions;

use anyhow::Context;
use clap::{Args, ValueEnum};
use strom_client::{Admin, Client, ClientConfig};

/// Flags every client command takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Broker addresses to bootstrap from (comma-separated host:port).
    #[arg(
        long = "bootstrap-server",
        visible_alias = "bootstrap-servers",
        short = 'b',
        env = "STROM_BOOTSTRAP_SERVER",
        default_value = "localhost:9092",
        global = true
    )]
    pub bootstrap: String,
    /// Output format: human tables, or JSON for scripts.
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

impl Common {
    pub async fn client(&self) -> anyhow::Result<Client> {
        Client::connect(ClientConfig::new(&self.bootstrap))
            .await
            .map_err(anyhow::Error::from)
    }

    pub async fn admin(&self) -> anyhow::Result<Admin> {
        Ok(Admin::new(self.client().await?))
    }
}

/// `--topic X` or a positional `X`, exactly one of them (or neither when `required` is false).
pub fn one_name(
    flag: &Option<String>,
    positional: &Option<String>,
    what: &str,
) -> anyhow::Result<String> {
    match (flag, positional) {
        (Some(a), Some(b)) if a != b => {
            anyhow::bail!("{what} given twice: --{what} {a} and {b}")
        }
        (Some(a), _) | (None, Some(a)) => Ok(a.clone()),
        (None, None) => anyhow::bail!("a {what} is required: --{what} NAME"),
    }
}

/// Prints rows under upper-case headers, columns padded to their widest cell.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints one JSON value on its own line.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// `k=v` pairs from repeated flags or comma-separated lists.
pub fn parse_pairs(items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in items {
        for pair in item.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .with_context(|| format!("{pair:?}: expected KEY=VALUE"))?;
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(out)
}

/// Config changes from `KEY=VALUE` sets and keys to delete (both repeated or comma-separated).
pub fn alter_ops(set: &[String], delete: &[String]) -> anyhow::Result<Vec<strom_client::AlterOp>> {
    let mut ops: Vec<strom_client::AlterOp> = parse_pairs(set)?
        .into_iter()
        .map(|(k, v)| strom_client::AlterOp::Set(k, v))
        .collect();
    ops.extend(
        delete
            .iter()
            .flat_map(|d| d.split(','))
            .filter(|k| !k.trim().is_empty())
            .map(|k| strom_client::AlterOp::Delete(k.trim().to_string())),
    );
    Ok(ops)
}

/// `all`/`-1`, `1`, `0` as Kafka's `acks`.
pub fn parse_acks(s: &str) -> anyhow::Result<i16> {
    match s {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        _ => anyhow::bail!("--acks {s:?}: expected all, -1, 0 or 1"),
    }
}

pub fn parse_compression(s: &str) -> anyhow::Result<strom_client::Compression> {
    strom_client::Compression::from_name(s)
        .with_context(|| format!("--compression {s:?}: expected none, gzip, snappy, lz4 or zstd"))
}
