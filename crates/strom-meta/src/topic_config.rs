//! Topic-level configs: Kafka's names, types, defaults, and the broker keys that set the
//! defaults. DescribeConfigs lists every one with its value and where it came from.

/// How a config value is typed and checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Long {
        min: i64,
    },
    Int {
        min: i64,
    },
    Double {
        min: f64,
        max: f64,
    },
    Bool,
    /// One of the listed values.
    Choice(&'static [&'static str]),
    /// A comma-separated list of the listed values (empty allowed when `min_items` is 0).
    List(&'static [&'static str]),
    /// A comma-separated list of any values (Kafka's type LIST without a validator).
    AnyList,
    Str,
}

impl Kind {
    /// Whether values are comma-separated lists (IncrementalAlterConfigs APPEND/SUBTRACT).
    pub fn is_list(self) -> bool {
        matches!(self, Kind::List(_) | Kind::AnyList)
    }
}

/// One topic config.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    /// The broker config that supplies the default, when one does.
    pub broker_key: Option<&'static str>,
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    broker_key: Option<&'static str>,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        kind,
        default,
        broker_key,
        doc,
    }
}

const LONG0: Kind = Kind::Long { min: 0 };
const LONG_NEG1: Kind = Kind::Long { min: -1 };

/// Every topic config Kafka 4 has, in its order of documentation.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def(
        "cleanup.policy",
        Kind::List(&["compact", "delete"]),
        "delete",
        Some("log.cleanup.policy"),
        "Retention by deleting old segments, compaction by key, or both.",
    ),
    def(
        "compression.type",
        Kind::Choice(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        "producer",
        Some("compression.type"),
        "Batches are stored as the producer compressed them.",
    ),
    def(
        "compression.gzip.level",
        Kind::Int { min: -1 },
        "-1",
        Some("compression.gzip.level"),
        "Level for gzip when the topic recompresses.",
    ),
    def(
        "compression.lz4.level",
        Kind::Int { min: 1 },
        "9",
        Some("compression.lz4.level"),
        "Level for lz4 when the topic recompresses.",
    ),
    def(
        "compression.zstd.level",
        Kind::Int { min: -131072 },
        "3",
        Some("compression.zstd.level"),
        "Level for zstd when the topic recompresses.",
    ),
    def(
        "delete.retention.ms",
        LONG0,
        "86400000",
        Some("log.cleaner.delete.retention.ms"),
        "How long tombstones stay in a compacted topic.",
    ),
    def(
        "file.delete.delay.ms",
        LONG0,
        "60000",
        Some("log.segment.delete.delay.ms"),
        "Delay before deleting a file from the filesystem.",
    ),
    def(
        "flush.messages",
        Kind::Long { min: 1 },
        "9223372036854775807",
        Some("log.flush.interval.messages"),
        "Records between background flushes.",
    ),
    def(
        "flush.ms",
        LONG0,
        "9223372036854775807",
        Some("log.flush.interval.ms"),
        "Milliseconds between background flushes.",
    ),
    def(
        "follower.replication.throttled.replicas",
        Kind::AnyList,
        "",
        None,
        "Replicas throttled on the follower side.",
    ),
    def(
        "index.interval.bytes",
        Kind::Int { min: 0 },
        "4096",
        Some("log.index.interval.bytes"),
        "Bytes between offset index entries.",
    ),
    def(
        "leader.replication.throttled.replicas",
        Kind::AnyList,
        "",
        None,
        "Replicas throttled on the leader side.",
    ),
    def(
        "local.retention.bytes",
        Kind::Long { min: -2 },
        "-2",
        Some("log.local.retention.bytes"),
        "Local retention with tiered storage.",
    ),
    def(
        "local.retention.ms",
        Kind::Long { min: -2 },
        "-2",
        Some("log.local.retention.ms"),
        "Local retention with tiered storage.",
    ),
    def(
        "max.compaction.lag.ms",
        Kind::Long { min: 1 },
        "9223372036854775807",
        Some("log.cleaner.max.compaction.lag.ms"),
        "Longest a record stays uncompacted.",
    ),
    def(
        "max.message.bytes",
        Kind::Int { min: 0 },
        "1048588",
        Some("message.max.bytes"),
        "Largest record batch accepted.",
    ),
    def(
        "message.timestamp.after.max.ms",
        LONG0,
        "3600000",
        Some("log.message.timestamp.after.max.ms"),
        "How far in the future a timestamp may be.",
    ),
    def(
        "message.timestamp.before.max.ms",
        LONG0,
        "9223372036854775807",
        Some("log.message.timestamp.before.max.ms"),
        "How far in the past a timestamp may be.",
    ),
    def(
        "message.timestamp.type",
        Kind::Choice(&["CreateTime", "LogAppendTime"]),
        "CreateTime",
        Some("log.message.timestamp.type"),
        "Producer's timestamps, or the broker's.",
    ),
    def(
        "min.cleanable.dirty.ratio",
        Kind::Double { min: 0.0, max: 1.0 },
        "0.5",
        Some("log.cleaner.min.cleanable.ratio"),
        "Dirty share of the log before it is compacted.",
    ),
    def(
        "min.compaction.lag.ms",
        LONG0,
        "0",
        Some("log.cleaner.min.compaction.lag.ms"),
        "Youngest a record may be compacted.",
    ),
    def(
        "min.insync.replicas",
        Kind::Int { min: 1 },
        "1",
        Some("min.insync.replicas"),
        "In-sync replicas an acks=all write needs.",
    ),
    def(
        "preallocate",
        Kind::Bool,
        "false",
        Some("log.preallocate"),
        "Preallocate segment files.",
    ),
    def(
        "remote.log.copy.disable",
        Kind::Bool,
        "false",
        None,
        "Stop copying to tiered storage.",
    ),
    def(
        "remote.log.delete.on.disable",
        Kind::Bool,
        "false",
        None,
        "Delete tiered data when disabling it.",
    ),
    def(
        "remote.storage.enable",
        Kind::Bool,
        "false",
        None,
        "Tiered storage for this topic.",
    ),
    def(
        "retention.bytes",
        LONG_NEG1,
        "-1",
        Some("log.retention.bytes"),
        "Largest a partition grows before old segments go; -1: no limit.",
    ),
    def(
        "retention.ms",
        LONG_NEG1,
        "604800000",
        Some("log.retention.ms"),
        "How long records are kept; -1: forever.",
    ),
    def(
        "segment.bytes",
        Kind::Int { min: 14 },
        "1073741824",
        Some("log.segment.bytes"),
        "Segment file size.",
    ),
    def(
        "segment.index.bytes",
        Kind::Int { min: 4 },
        "10485760",
        Some("log.index.size.max.bytes"),
        "Index file size.",
    ),
    def(
        "segment.jitter.ms",
        LONG0,
        "0",
        Some("log.roll.jitter.ms"),
        "Random jitter subtracted from segment.ms.",
    ),
    def(
        "segment.ms",
        Kind::Long { min: 1 },
        "604800000",
        Some("log.roll.ms"),
        "Longest a segment stays active.",
    ),
    def(
        "unclean.leader.election.enable",
        Kind::Bool,
        "false",
        Some("unclean.leader.election.enable"),
        "Allow out-of-sync replicas to lead.",
    ),
];

pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks `value` against the config's type and range; the error names the key.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let def = find(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    check_kind(def.kind, value)
        .map_err(|why| format!("Invalid value {value} for configuration {name}: {why}"))
}

/// Checks a value against a kind; shared with broker config validation. The reasons are
/// the words of Kafka's `ConfigDef`, which clients and tools show.
pub fn check_kind(kind: Kind, value: &str) -> Result<(), String> {
    let v = value.trim();
    match kind {
        Kind::Long { min } | Kind::Int { min } => {
            let type_name = if matches!(kind, Kind::Int { .. }) {
                "INT"
            } else {
                "LONG"
            };
            let not_a_number = || format!("Not a number of type {type_name}");
            let n: i64 = v.parse().map_err(|_| not_a_number())?;
            if matches!(kind, Kind::Int { .. }) && i32::try_from(n).is_err() {
                return Err(not_a_number());
            }
            if n < min {
                return Err(format!("Value must be at least {min}"));
            }
        }
        Kind::Double { min, max } => {
            let n: f64 = v
                .parse()
                .map_err(|_| "Not a number of type DOUBLE".to_string())?;
            if n < min {
                return Err(format!("Value must be at least {min:?}"));
            }
            if n > max {
                return Err(format!("Value must be no more than {max:?}"));
            }
        }
        Kind::Bool => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err("Expected value to be either true or false".into());
            }
        }
        Kind::Choice(options) => {
            if !options.contains(&v) {
                return Err(format!("String must be one of: {}", options.join(", ")));
            }
        }
        Kind::List(options) => {
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if !options.contains(&item) {
                    return Err(format!("String must be one of: {}", options.join(", ")));
                }
            }
        }
        Kind::AnyList | Kind::Str => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_by_kind() {
        for (k, v, ok) in [
            ("retention.ms", "-1", true),
            ("retention.ms", "-2", false),
            ("retention.ms", "abc", false),
            ("cleanup.policy", "compact,delete", true),
            ("cleanup.policy", "bogus", false),
            ("min.insync.replicas", "0", false),
            ("min.insync.replicas", "99999999999", false),
            ("message.timestamp.type", "LogAppendTime", true),
            ("min.cleanable.dirty.ratio", "1.5", false),
            ("preallocate", "TRUE", true),
            ("no.such.config", "1", false),
        ] {
            assert_eq!(validate(k, v).is_ok(), ok, "{k}={v}");
        }
    }
}
