//! The `strom` binary: `strom broker` starts a broker; `topics`, `produce`, `consume`,
//! `groups`, `configs`, `cluster` and `perf` are the operator's tools (see `cli`). Broker
//! configuration: a Kafka properties file, then `STROM_*` environment variables, then
//! `--override key=value` flags, each over the one before.

mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use strom_broker::{parse_properties, Broker, BrokerConfig};

#[derive(Parser)]
#[command(
    name = "strom",
    version,
    about = "A Kafka-compatible event streaming platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a broker (a single-node cluster with no arguments: data in ./data, port 9092).
    Broker {
        /// A Kafka server.properties file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Set one configuration key, as Kafka's `--override`; may be repeated.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Create, list, describe, alter and delete topics.
    Topics {
        #[command(subcommand)]
        command: cli::topics::TopicsCommand,
        #[command(flatten)]
        common: cli::Common,
    },
    /// The console producer: one record per stdin line.
    Produce {
        #[command(flatten)]
        args: cli::produce::ProduceArgs,
        #[command(flatten)]
        common: cli::Common,
    },
    /// The console consumer: one record per stdout line.
    Consume {
        #[command(flatten)]
        args: cli::consume::ConsumeArgs,
        #[command(flatten)]
        common: cli::Common,
    },
    /// List, describe, reset the offsets of, and delete consumer groups.
    Groups {
        #[command(subcommand)]
        command: cli::groups::GroupsCommand,
        #[command(flatten)]
        common: cli::Common,
    },
    /// List and describe transactions, the producers of a partition; abort a hanging one.
    Transactions {
        #[command(subcommand)]
        command: cli::transactions::TransactionsCommand,
        #[command(flatten)]
        common: cli::Common,
    },
    /// Describe and alter topic and broker configs.
    Configs {
        #[command(subcommand)]
        command: cli::configs::ConfigsCommand,
        #[command(flatten)]
        common: cli::Common,
    },
    /// Describe the cluster: id, controller, brokers.
    Cluster {
        #[command(subcommand)]
        command: cli::cluster::ClusterCommand,
        #[command(flatten)]
        common: cli::Common,
    },
    /// Load tests: produce, consume, end-to-end latency.
    Perf {
        #[command(subcommand)]
        command: cli::perf::PerfCommand,
        #[command(flatten)]
        common: cli::Common,
    },
}

/// `STROM_LOG_DIRS=/x` sets `log.dirs`: strip the prefix, lower-case, `_` becomes `.`.
/// Strom's own `strom.*` keys drop their prefix too: `STROM_HTTP_LISTENER` sets
/// `strom.http.listener`. Environment variables are ambient, so one that names no
/// configuration key (say `STROM_LOG`, the log filter) is skipped rather than refused.
fn env_overrides() -> BTreeMap<String, String> {
    std::env::vars()
        .filter_map(|(k, v)| {
            let key = k
                .strip_prefix("STROM_")?
                .to_ascii_lowercase()
                .replace('_', ".");
            let own = format!("strom.{key}");
            [key, own]
                .into_iter()
                .find(|k| strom_broker::config::is_known_key(k))
                .map(|k| (k, v))
        })
        .collect()
}

fn load_config(file: Option<PathBuf>, overrides: Vec<String>) -> anyhow::Result<BrokerConfig> {
    let mut props = match &file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_properties(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => BTreeMap::new(),
    };
    props.extend(env_overrides());
    for o in overrides {
        let (k, v) = o
            .split_once('=')
            .with_context(|| format!("--override {o:?}: expected KEY=VALUE"))?;
        props.insert(k.trim().to_string(), v.trim().to_string());
    }
    let (config, ignored) = BrokerConfig::from_properties(&props)?;
    for key in ignored {
        tracing::info!(
            key,
            "Kafka configuration key has no effect in Strom; ignored"
        );
    }
    Ok(config)
}

async fn run_broker(config: BrokerConfig) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM that arrives right after the ready line must still mean a
    // clean shutdown, not the default of dying on the spot.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let running = Broker::start(config).await?;
    // One line on stdout once clients can connect: scripts and test harnesses wait for it.
    // The client addresses stay last (harnesses take the line's last word).
    let addrs: Vec<String> = running.addrs.iter().map(|a| a.to_string()).collect();
    let http = running
        .broker
        .http_url()
        .map(|u| format!(", http on {u},"))
        .unwrap_or_default();
    println!(
        "strom broker ready: node {}{http} listening on {}",
        running.broker.node_id,
        addrs.join(",")
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    running.shutdown().await?;
    tracing::info!("clean shutdown complete");
    Ok(())
}

/// Runs a client command on a runtime of its own.
fn run_tool<F: std::future::Future<Output = anyhow::Result<()>>>(
    f: impl FnOnce() -> F,
) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(f())
}

/// Colour in the log only on a terminal, and not when `NO_COLOR` is set (no-color.org):
/// a file or journald gets plain text.
fn colour_log() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The broker's allocations are mostly small and long-lived (a partition's state is a few
/// hundred bytes in a dozen pieces). glibc gives each thread that allocates concurrently an
/// arena of its own, up to 8 per core: a start-up that opens partitions on several threads
/// leaves each arena part-used, so a restarted broker held a third more memory than the one
/// that created the same partitions (30,000 partitions: 97 MB against 85 MB; with two
/// arenas, 85 MB both, and the same requests/s under load). `MALLOC_ARENA_MAX` or
/// `GLIBC_TUNABLES`, when set, win.
fn cap_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a malloc parameter set before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Broker { .. }) {
        // A tool piped into `head` ends quietly when the reader goes, as Unix tools do
        // (Rust ignores SIGPIPE, and `println!` would panic on the closed pipe).
        // SAFETY: restoring a signal's default disposition, before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // The broker logs at info; the tools only say what went wrong (their output is data).
    let default_level = match cli.command {
        // openraft reports every election and vote at info: kept to its warnings.
        Command::Broker { .. } => "info,openraft=warn",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STROM_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_log())
        .init();
    if matches!(cli.command, Command::Broker { .. }) {
        cap_malloc_arenas();
    }
    let result = match cli.command {
        Command::Broker { config, overrides } => load_config(config, overrides).and_then(|c| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(run_broker(c))
        }),
        Command::Topics { command, common } => run_tool(|| cli::topics::run(command, &common)),
        Command::Produce { args, common } => run_tool(|| cli::produce::run(args, &common)),
        Command::Consume { args, common } => run_tool(|| cli::consume::run(args, &common)),
        Command::Groups { command, common } => run_tool(|| cli::groups::run(command, &common)),
        Command::Transactions { command, common } => {
            run_tool(|| cli::transactions::run(command, &common))
        }
        Command::Configs { command, common } => run_tool(|| cli::configs::run(command, &common)),
        Command::Cluster { command, common } => run_tool(|| cli::cluster::run(command, &common)),
        Command::Perf { command, common } => run_tool(|| cli::perf::run(command, &common)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strom: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
