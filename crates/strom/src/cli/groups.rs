//! `strom groups list|describe|reset-offsets|delete`, as `kafka-consumer-groups.sh` does them.

use super::{print_json, print_table, Common, Output};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use std::collections::BTreeMap;
use strom_client::{Admin, OffsetSpec};

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// List groups with their state.
    List,
    /// Per partition: committed offset, log end, lag and owner.
    Describe {
        #[arg(value_name = "GROUP")]
        name: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
    /// Move a group's committed offsets (the group must have no active members).
    ResetOffsets(ResetArgs),
    /// Delete a group and its committed offsets (it must have no active members).
    Delete {
        #[arg(value_name = "GROUP")]
        name: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_datetime", "to_offset", "shift_by"])))]
pub struct ResetArgs {
    #[arg(value_name = "GROUP")]
    name: Option<String>,
    #[arg(long)]
    group: Option<String>,
    /// Only this topic (TOPIC or TOPIC:P1,P2); default: every topic the group has offsets for.
    #[arg(long)]
    topic: Option<String>,
    #[arg(long = "to-earliest")]
    to_earliest: bool,
    #[arg(long = "to-latest")]
    to_latest: bool,
    /// An ISO-8601 time (2026-11-22T10:00:00, optionally with Z or a ±hh:mm offset) or
    /// milliseconds since the epoch.
    #[arg(long = "to-datetime")]
    to_datetime: Option<String>,
    #[arg(long = "to-offset")]
    to_offset: Option<i64>,
    #[arg(long = "shift-by", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Show the new offsets without committing them (the default).
    #[arg(long = "dry-run", conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    execute: bool,
}

pub async fn run(cmd: GroupsCommand, common: &Common) -> anyhow::Result<()> {
    let admin = common.admin().await?;
    match cmd {
        GroupsCommand::List => {
            let groups = admin.list_groups().await?;
            match common.output {
                Output::Json => print_json(&json!(groups
                    .iter()
                    .map(|g| json!({"group": g.group_id, "state": g.state, "protocol_type": g.protocol_type}))
                    .collect::<Vec<_>>())),
                Output::Table => print_table(
                    &["GROUP", "STATE", "PROTOCOL-TYPE"],
                    &groups
                        .iter()
                        .map(|g| vec![g.group_id.clone(), g.state.clone(), g.protocol_type.clone()])
                        .collect::<Vec<_>>(),
                ),
            }
        }
        GroupsCommand::Describe { name, group } => {
            let group = super::one_name(&group, &name, "group")?;
            describe(&admin, &group, common.output).await?;
        }
        GroupsCommand::ResetOffsets(args) => reset(&admin, args, common.output).await?,
        GroupsCommand::Delete { name, group } => {
            let group = super::one_name(&group, &name, "group")?;
            admin.delete_group(&group).await?;
            match common.output {
                Output::Table => println!("Deleted group {group}."),
                Output::Json => print_json(&json!({"deleted": group})),
            }
        }
    }
    Ok(())
}

async fn describe(admin: &Admin, group: &str, output: Output) -> anyhow::Result<()> {
    let desc = admin.describe_group(group).await?;
    let committed = admin.committed_offsets(group).await?;
    if desc.state == "Dead" && committed.is_empty() {
        anyhow::bail!("group {group} does not exist");
    }
    let mut owners: BTreeMap<(String, i32), (&str, &str, &str)> = BTreeMap::new();
    for m in &desc.members {
        for tp in &m.assignment {
            owners.insert(tp.clone(), (&m.member_id, &m.host, &m.client_id));
        }
    }
    let mut partitions: Vec<(String, i32)> = committed.keys().cloned().collect();
    partitions.extend(owners.keys().cloned());
    partitions.sort();
    partitions.dedup();
    let ends = admin.list_offsets(&partitions, OffsetSpec::Latest).await?;
    let rows: Vec<_> = partitions
        .iter()
        .map(|tp| {
            let current = committed.get(tp).copied();
            let end = ends.get(tp).copied().flatten();
            let lag = match (current, end) {
                (Some(c), Some(e)) => Some((e - c).max(0)),
                _ => None,
            };
            let (member, host, client) = owners.get(tp).copied().unwrap_or(("-", "-", "-"));
            (tp, current, end, lag, member, host, client)
        })
        .collect();
    match output {
        Output::Json => print_json(&json!({
            "group": group,
            "state": desc.state,
            "members": desc.members.len(),
            "partitions": rows.iter().map(|(tp, cur, end, lag, member, host, client)| json!({
                "topic": tp.0, "partition": tp.1, "current_offset": cur, "log_end_offset": end,
                "lag": lag, "consumer_id": member, "host": host, "client_id": client,
            })).collect::<Vec<_>>(),
        })),
        Output::Table => {
            let dash = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
            println!(
                "Group {group} is {} with {} member(s).",
                desc.state,
                desc.members.len()
            );
            print_table(
                &[
                    "GROUP",
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID",
                ],
                &rows
                    .iter()
                    .map(|(tp, cur, end, lag, member, host, client)| {
                        vec![
                            group.to_string(),
                            tp.0.clone(),
                            tp.1.to_string(),
                            dash(*cur),
                            dash(*end),
                            dash(*lag),
                            member.to_string(),
                            host.to_string(),
                            client.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            );
        }
    }
    Ok(())
}

async fn reset(admin: &Admin, args: ResetArgs, output: Output) -> anyhow::Result<()> {
    let group = super::one_name(&args.group, &args.name, "group")?;
    let desc = admin.describe_group(&group).await?;
    if args.execute && !matches!(desc.state.as_str(), "Empty" | "Dead") {
        anyhow::bail!(
            "group {group} is {} with {} member(s): offsets can only be reset while it has no active members",
            desc.state,
            desc.members.len()
        );
    }
    let committed = admin.committed_offsets(&group).await?;
    let partitions: Vec<(String, i32)> = match &args.topic {
        Some(spec) => {
            let (topic, parts) = match spec.split_once(':') {
                Some((t, ps)) => (t.to_string(), Some(ps)),
                None => (spec.clone(), None),
            };
            match parts {
                Some(ps) => ps
                    .split(',')
                    .map(|p| {
                        p.trim()
                            .parse::<i32>()
                            .map(|p| (topic.clone(), p))
                            .with_context(|| format!("--topic {spec}: bad partition {p:?}"))
                    })
                    .collect::<anyhow::Result<_>>()?,
                None => {
                    let info = admin.client().topic(&topic).await?;
                    info.partitions
                        .iter()
                        .map(|p| (topic.clone(), p.partition))
                        .collect()
                }
            }
        }
        None => committed.keys().cloned().collect(),
    };
    if partitions.is_empty() {
        anyhow::bail!("group {group} has no committed offsets; name the partitions with --topic");
    }
    let earliest = admin
        .list_offsets(&partitions, OffsetSpec::Earliest)
        .await?;
    let latest = admin.list_offsets(&partitions, OffsetSpec::Latest).await?;
    let at_time = match &args.to_datetime {
        Some(s) => Some(
            admin
                .list_offsets(&partitions, OffsetSpec::Timestamp(parse_datetime(s)?))
                .await?,
        ),
        None => None,
    };
    let mut new = BTreeMap::new();
    for tp in &partitions {
        let lo = earliest.get(tp).copied().flatten().unwrap_or(0);
        let hi = latest.get(tp).copied().flatten().unwrap_or(0);
        let target = if args.to_earliest {
            lo
        } else if args.to_latest {
            hi
        } else if let Some(m) = &at_time {
            m.get(tp).copied().flatten().unwrap_or(hi)
        } else if let Some(o) = args.to_offset {
            o
        } else if let Some(d) = args.shift_by {
            committed.get(tp).copied().unwrap_or(hi) + d
        } else {
            unreachable!("clap requires one target")
        };
        // As Kafka's tool does: a target outside the log is clamped into it.
        new.insert(tp.clone(), target.clamp(lo, hi));
    }
    if args.execute {
        admin.commit_offsets(&group, &new).await?;
    }
    match output {
        Output::Json => print_json(&json!({
            "group": group,
            "executed": args.execute,
            "offsets": new.iter().map(|((t, p), o)| json!({"topic": t, "partition": p, "new_offset": o})).collect::<Vec<_>>(),
        })),
        Output::Table => {
            print_table(
                &["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
                &new.iter()
                    .map(|((t, p), o)| vec![group.clone(), t.clone(), p.to_string(), o.to_string()])
                    .collect::<Vec<_>>(),
            );
            if !args.execute {
                println!("(dry run: nothing committed; add --execute to commit)");
            }
        }
    }
    Ok(())
}

/// Milliseconds since the epoch, or `YYYY-MM-DDTHH:MM:SS[.mmm][Z|±HH:MM]` (local time
/// without a zone is taken as UTC, which is what a server's clock usually runs on).
pub fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        anyhow::anyhow!("--to-datetime {s:?}: expected YYYY-MM-DDTHH:MM:SS[.mmm][Z|+hh:mm] or epoch milliseconds")
    };
    let (date, rest) = s.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<anyhow::Result<_>>()?;
    let [year, month, day] = d[..] else {
        return Err(bad());
    };
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (h, m) = z[1..].split_once(':').ok_or_else(bad)?;
        let h: i64 = h.parse().map_err(|_| bad())?;
        let m: i64 = m.parse().map_err(|_| bad())?;
        (t, sign * (h * 60 + m))
    } else {
        (rest, 0)
    };
    let (hms, millis) = match time.split_once('.') {
        Some((a, b)) => (
            a,
            format!("{:0<3}", b.get(..3).unwrap_or(b))
                .parse::<i64>()
                .map_err(|_| bad())?,
        ),
        None => (time, 0),
    };
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<anyhow::Result<_>>()?;
    let [hour, minute, second] = t[..] else {
        return Err(bad());
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 86_400 + hour * 3_600 + minute * 60 + second) - offset_min * 60) * 1_000 + millis)
}

#[cfg(test)]
mod tests {
    #[test]
    fn datetimes() {
        assert_eq!(super::parse_datetime("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            super::parse_datetime("2026-11-22T10:00:00.5Z").unwrap(),
            1_795_341_600_500
        );
        assert_eq!(
            super::parse_datetime("2026-11-22T11:00:00+01:00").unwrap(),
            1_795_341_600_000
        );
        assert_eq!(super::parse_datetime("12345").unwrap(), 12345);
        assert!(super::parse_datetime("yesterday").is_err());
    }
}
