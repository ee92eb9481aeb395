//! `strom topics reassign`: moving partitions between brokers while they serve, as Kafka's
//! `kafka-reassign-partitions` does it, with its plan format
//! (`{"version":1,"partitions":[{"topic","partition","replicas"}]}`) and its lines.
//! `--generate` proposes a plan spreading topics over given brokers (Strom's rack-aware
//! placement), `--execute` starts it (with `--throttle`, replication of the moving replicas
//! is limited to that many bytes/s), `--verify` tells each partition's state and clears the
//! throttles once all are done, `--cancel` stops the plan's moves, `--list` shows the moves
//! running.

use super::{print_json, Common, Output};
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use strom_client::{Admin, AlterOp, Move, ResourceType};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true)
    .args(["generate", "execute", "verify", "cancel", "list"])))]
pub struct ReassignArgs {
    /// Propose a plan that spreads `--topic`s over `--brokers`.
    #[arg(long)]
    generate: bool,
    /// Start the moves of `--plan`.
    #[arg(long)]
    execute: bool,
    /// Tell whether the moves of `--plan` are done; clears the throttles once all are.
    #[arg(long)]
    verify: bool,
    /// Stop the running moves of `--plan` (back to the replicas they had).
    #[arg(long)]
    cancel: bool,
    /// The moves running now.
    #[arg(long)]
    list: bool,
    /// With --generate: a topic to move (may be repeated).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// With --generate: the brokers to spread over, e.g. 1,2,4.
    #[arg(long, value_delimiter = ',')]
    brokers: Vec<i32>,
    /// The plan, a file in Kafka's reassignment JSON ("-": standard input).
    #[arg(long)]
    plan: Option<std::path::PathBuf>,
    /// With --execute: limit the moving replicas' replication to this many bytes/s.
    #[arg(long)]
    throttle: Option<u64>,
}

const LEADER_RATE: &str = "leader.replication.throttled.rate";
const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

pub async fn run(args: ReassignArgs, common: &Common) -> anyhow::Result<()> {
    let admin = common.admin().await?;
    if args.list {
        return list(&admin, common).await;
    }
    if args.generate {
        return generate(&admin, common, &args.topics, &args.brokers).await;
    }
    let plan = read_plan(args.plan.as_deref())?;
    if args.execute {
        execute(&admin, &plan, args.throttle).await
    } else if args.verify {
        verify(&admin, &plan).await
    } else {
        cancel(&admin, &plan).await
    }
}

/// One partition of a plan.
type Planned = (String, i32, Vec<i32>);

fn read_plan(path: Option<&std::path::Path>) -> anyhow::Result<Vec<Planned>> {
    let path = path.context("give the plan with --plan FILE (\"-\" reads standard input)")?;
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    parse_plan(&text)
}

fn parse_plan(text: &str) -> anyhow::Result<Vec<Planned>> {
    let v: Value = serde_json::from_str(text).context("the plan is not JSON")?;
    let parts = v["partitions"]
        .as_array()
        .context("the plan has no \"partitions\" list")?;
    parts
        .iter()
        .map(|p| {
            let topic = p["topic"]
                .as_str()
                .context("a plan entry without \"topic\"")?;
            let partition = p["partition"]
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .context("a plan entry without a \"partition\" number")?;
            let replicas = p["replicas"]
                .as_array()
                .context("a plan entry without \"replicas\"")?
                .iter()
                .map(|r| r.as_i64().and_then(|n| i32::try_from(n).ok()))
                .collect::<Option<Vec<i32>>>()
                .context("\"replicas\" must list broker ids")?;
            Ok((topic.to_string(), partition, replicas))
        })
        .collect()
}

/// Kafka's reassignment JSON for `plan`.
fn plan_json(plan: &[Planned]) -> String {
    let parts: Vec<Value> = plan
        .iter()
        .map(|(t, p, r)| {
            json!({"topic": t, "partition": p, "replicas": r,
                   "log_dirs": vec!["any"; r.len()]})
        })
        .collect();
    json!({"version": 1, "partitions": parts}).to_string()
}

/// The replicas each partition of `topics` has now.
async fn current(admin: &Admin, topics: &BTreeSet<String>) -> anyhow::Result<Vec<Planned>> {
    let names: Vec<String> = topics.iter().cloned().collect();
    let md = admin.metadata(Some(&names)).await?;
    let mut out = Vec::new();
    for name in &names {
        let t = md
            .topics
            .get(name)
            .filter(|t| t.error_code == 0)
            .with_context(|| format!("topic {name} does not exist"))?;
        for p in &t.partitions {
            out.push((name.clone(), p.partition, p.replicas.clone()));
        }
    }
    Ok(out)
}

/// Kafka's two plans (current, proposed); with `--output json` only the proposed one, to
/// be given to `--execute`.
async fn generate(
    admin: &Admin,
    common: &Common,
    topics: &[String],
    brokers: &[i32],
) -> anyhow::Result<()> {
    if topics.is_empty() || brokers.is_empty() {
        anyhow::bail!("--generate needs --topic (one or more) and --brokers");
    }
    let cluster = admin.describe_cluster().await?;
    let chosen: Vec<(i32, Option<String>)> = brokers
        .iter()
        .map(|id| {
            let b = cluster.brokers.iter().find(|b| b.node_id == *id);
            let b = b.with_context(|| format!("broker {id} is not in the cluster"))?;
            Ok((b.node_id, b.rack.clone()))
        })
        .collect::<anyhow::Result<_>>()?;
    let now = current(admin, &topics.iter().cloned().collect()).await?;
    let mut proposed = Vec::new();
    for topic in topics {
        let parts: Vec<&Planned> = now.iter().filter(|(t, _, _)| t == topic).collect();
        let rf = parts.first().map_or(1, |(_, _, r)| r.len());
        if rf > chosen.len() {
            anyhow::bail!(
                "topic {topic} has {rf} replicas per partition, more than the {} brokers given",
                chosen.len()
            );
        }
        let seed = topic
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31) ^ usize::from(b));
        for (p, replicas) in spread(&chosen, parts.len(), rf, seed)
            .into_iter()
            .enumerate()
        {
            proposed.push((topic.clone(), i32::try_from(p)?, replicas));
        }
    }
    match common.output {
        Output::Json => println!("{}", plan_json(&proposed)),
        Output::Table => {
            println!(
                "Current partition replica assignment\n{}\n",
                plan_json(&now)
            );
            let proposed = plan_json(&proposed);
            println!("Proposed partition reassignment configuration\n{proposed}");
        }
    }
    Ok(())
}

/// Kafka's assignment for `partitions` partitions of `rf` replicas over `brokers`
/// (`assignReplicasToBrokers`): the brokers interleaved by rack, partition p led by the
/// broker `seed + p` along, its followers at a shift that grows with every round over the
/// brokers, so that no two brokers share all their partitions.
fn spread(
    brokers: &[(i32, Option<String>)],
    partitions: usize,
    rf: usize,
    seed: usize,
) -> Vec<Vec<i32>> {
    let mut racks: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        racks
            .entry(rack.as_deref().unwrap_or(""))
            .or_default()
            .push(*id);
    }
    racks.values_mut().for_each(|ids| ids.sort_unstable());
    let deepest = racks.values().map(Vec::len).max().unwrap_or(0);
    let list: Vec<i32> = (0..deepest)
        .flat_map(|i| racks.values().filter_map(move |ids| ids.get(i).copied()))
        .collect();
    let n = list.len();
    (0..partitions)
        .map(|p| {
            let first = (seed + p) % n;
            let shift = (seed / n + p / n) % n.saturating_sub(1).max(1);
            let follower = |j: usize| list[(first + 1 + (shift + j) % (n - 1).max(1)) % n];
            std::iter::once(list[first])
                .chain((0..rf - 1).map(follower))
                .collect()
        })
        .collect()
}

async fn execute(admin: &Admin, plan: &[Planned], throttle: Option<u64>) -> anyhow::Result<()> {
    let topics: BTreeSet<String> = plan.iter().map(|(t, _, _)| t.clone()).collect();
    let now = current(admin, &topics).await?;
    println!(
        "Current partition replica assignment\n\n{}\n",
        plan_json(&now)
    );
    println!("Save this to use as the --plan option during rollback");
    if let Some(rate) = throttle {
        set_throttles(admin, plan, &now, rate).await?;
    }
    let moves: Vec<Move> = plan
        .iter()
        .map(|(t, p, r)| (t.clone(), *p, Some(r.clone())))
        .collect();
    let failed = report(admin.alter_partition_reassignments(&moves).await?);
    if failed > 0 {
        anyhow::bail!("{failed} partition reassignment(s) could not be started");
    }
    let names: Vec<String> = plan.iter().map(|(t, p, _)| format!("{t}-{p}")).collect();
    println!(
        "Successfully started partition reassignments for {}",
        names.join(",")
    );
    Ok(())
}

/// Prints each refused partition; returns how many were refused.
fn report(results: Vec<strom_client::MoveResult>) -> usize {
    let mut failed = 0;
    for ((t, p), code, message) in results.into_iter().filter(|r| r.1 != 0) {
        failed += 1;
        let why = message.unwrap_or_else(|| format!("error {code}"));
        println!("Error reassigning partition {t}-{p}: {why} (error {code})");
    }
    failed
}

/// Kafka's throttles: both rates on every broker involved; the topics' current replicas
/// throttled as leaders, the replicas being added as followers.
async fn set_throttles(
    admin: &Admin,
    plan: &[Planned],
    now: &[Planned],
    rate: u64,
) -> anyhow::Result<()> {
    let mut leaders: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut followers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut brokers = BTreeSet::new();
    for (t, p, target) in plan {
        let was = now.iter().find(|(nt, np, _)| nt == t && np == p);
        let was = was.map(|(_, _, r)| r.clone()).unwrap_or_default();
        for b in &was {
            leaders.entry(t).or_default().push(format!("{p}:{b}"));
        }
        for b in target.iter().filter(|b| !was.contains(b)) {
            followers.entry(t).or_default().push(format!("{p}:{b}"));
        }
        brokers.extend(was.iter().chain(target).copied());
    }
    for b in &brokers {
        let ops = [
            AlterOp::Set(LEADER_RATE.into(), rate.to_string()),
            AlterOp::Set(FOLLOWER_RATE.into(), rate.to_string()),
        ];
        admin
            .alter_configs(ResourceType::Broker, &b.to_string(), &ops)
            .await?;
    }
    for (t, replicas) in &leaders {
        let mut ops = vec![AlterOp::Set(LEADER_REPLICAS.into(), replicas.join(","))];
        if let Some(f) = followers.get(t) {
            ops.push(AlterOp::Set(FOLLOWER_REPLICAS.into(), f.join(",")));
        }
        admin.alter_configs(ResourceType::Topic, t, &ops).await?;
    }
    println!("The inter-broker throttle limit was set to {rate} B/s");
    Ok(())
}

async fn verify(admin: &Admin, plan: &[Planned]) -> anyhow::Result<()> {
    let running = admin.list_partition_reassignments().await?;
    let topics: BTreeSet<String> = plan.iter().map(|(t, _, _)| t.clone()).collect();
    let now = current(admin, &topics).await?;
    println!("Status of partition reassignment:");
    let mut done = true;
    for (t, p, target) in plan {
        let moving = running.iter().any(|r| r.topic == *t && r.partition == *p);
        let there = now
            .iter()
            .any(|(nt, np, r)| nt == t && np == p && r == target);
        let state = match (moving, there) {
            (true, _) => "is still in progress",
            (false, true) => "is completed",
            (false, false) => "failed: its replicas are not the plan's",
        };
        done &= !moving;
        println!("Reassignment of partition {t}-{p} {state}.");
    }
    if done {
        clear_throttles(admin, &topics).await?;
    }
    Ok(())
}

/// Removes the throttles `--execute --throttle` set (from every broker: a broker that
/// left a plan keeps no stale rate).
async fn clear_throttles(admin: &Admin, topics: &BTreeSet<String>) -> anyhow::Result<()> {
    let brokers = admin.describe_cluster().await?.brokers;
    let ids: Vec<String> = brokers.iter().map(|b| b.node_id.to_string()).collect();
    println!();
    println!(
        "Clearing broker-level throttles on brokers {}",
        ids.join(",")
    );
    for id in &ids {
        let ops = [
            AlterOp::Delete(LEADER_RATE.into()),
            AlterOp::Delete(FOLLOWER_RATE.into()),
        ];
        admin.alter_configs(ResourceType::Broker, id, &ops).await?;
    }
    for t in topics {
        println!("Clearing topic-level throttles on topic {t}");
        let ops = [
            AlterOp::Delete(LEADER_REPLICAS.into()),
            AlterOp::Delete(FOLLOWER_REPLICAS.into()),
        ];
        admin.alter_configs(ResourceType::Topic, t, &ops).await?;
    }
    Ok(())
}

async fn cancel(admin: &Admin, plan: &[Planned]) -> anyhow::Result<()> {
    let moves: Vec<Move> = plan.iter().map(|(t, p, _)| (t.clone(), *p, None)).collect();
    let failed = report(admin.alter_partition_reassignments(&moves).await?);
    if failed > 0 {
        anyhow::bail!("{failed} partition reassignment(s) could not be cancelled");
    }
    let names: Vec<String> = plan.iter().map(|(t, p, _)| format!("{t}-{p}")).collect();
    println!(
        "Successfully cancelled partition reassignments for: {}",
        names.join(",")
    );
    Ok(())
}

async fn list(admin: &Admin, common: &Common) -> anyhow::Result<()> {
    let running = admin.list_partition_reassignments().await?;
    match common.output {
        Output::Json => print_json(&json!(running
            .iter()
            .map(|r| json!({"topic": r.topic, "partition": r.partition,
                "replicas": r.replicas, "adding": r.adding, "removing": r.removing}))
            .collect::<Vec<_>>())),
        Output::Table => {
            for r in &running {
                println!(
                    "{}-{}: replicas {:?}, adding {:?}, removing {:?}",
                    r.topic, r.partition, r.replicas, r.adding, r.removing
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_uses_every_broker_evenly_without_repeating_one_in_a_partition() {
        let brokers: Vec<(i32, Option<String>)> = (1..=4).map(|id| (id, None)).collect();
        for seed in 0..5 {
            let plan = spread(&brokers, 8, 3, seed);
            let mut count = BTreeMap::new();
            for replicas in &plan {
                let distinct: BTreeSet<&i32> = replicas.iter().collect();
                assert_eq!(distinct.len(), 3, "{replicas:?}");
                *count.entry(replicas[0]).or_insert(0) += 1;
            }
            assert!(count.values().all(|c| *c == 2), "leaders {count:?}");
        }
        let one = spread(&[(7, None)], 2, 1, 3);
        assert_eq!(one, vec![vec![7], vec![7]]);
    }

    #[test]
    fn a_plan_reads_back_what_it_wrote_and_bad_plans_say_why() {
        let plan = vec![
            ("t".to_string(), 0, vec![4, 2]),
            ("u".to_string(), 3, vec![1]),
        ];
        assert_eq!(parse_plan(&plan_json(&plan)).unwrap(), plan);
        for (bad, why) in [
            ("nope", "not JSON"),
            ("{}", "no \"partitions\""),
            (
                r#"{"partitions":[{"partition":0,"replicas":[1]}]}"#,
                "\"topic\"",
            ),
            (
                r#"{"partitions":[{"topic":"t","partition":0,"replicas":["x"]}]}"#,
                "broker ids",
            ),
        ] {
            let e = parse_plan(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
