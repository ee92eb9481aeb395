//! The metadata quorum in a scrape (Kafka's raft-metrics and broker-metadata-metrics): this
//! node's Raft state, term, leader, log and applied indexes, the image it publishes, and on
//! the leader how far each other node's log is behind.

use crate::broker::Broker;
use openraft::ServerState;
use strom_metrics::{Exposition, Kind};

pub fn render(e: &mut Exposition, broker: &Broker) {
    e.family(
        "strom_metadata_applied_offset",
        Kind::Gauge,
        "Offset of the last metadata batch this node applied (Kafka: last-applied-record-offset)",
    );
    e.sample(&[], broker.meta.applier().published().offset);
    let Some(q) = broker.meta.quorum() else {
        return;
    };
    let m = q.raft().metrics().borrow().clone();
    e.family(
        "strom_metadata_quorum_state",
        Kind::Gauge,
        "1 for this node's Raft state in the metadata quorum (Kafka: current-state)",
    );
    let states = [
        (ServerState::Leader, "leader"),
        (ServerState::Follower, "follower"),
        (ServerState::Candidate, "candidate"),
        (ServerState::Learner, "observer"),
        (ServerState::Shutdown, "shutdown"),
    ];
    for (state, name) in states {
        e.sample(&[("state", name)], u64::from(m.state == state));
    }
    let last_log = m.last_log_index.unwrap_or(0);
    let applied = m.last_applied.map_or(0, |l| l.index);
    let gauges: [(&str, &str, i64); 4] = [
        (
            "strom_metadata_quorum_term",
            "The quorum's term (Kafka: current-epoch)",
            m.current_term as i64,
        ),
        (
            "strom_metadata_quorum_leader",
            "Node id of the quorum's leader, -1 when none is known (Kafka: current-leader)",
            m.current_leader.map_or(-1, |l| l as i64),
        ),
        (
            "strom_metadata_quorum_log_end_index",
            "Index of this node's last quorum log entry (Kafka: log-end-offset)",
            last_log as i64,
        ),
        (
            "strom_metadata_quorum_applied_index",
            "Index of the last quorum log entry applied here (Kafka: high-watermark, as applied)",
            applied as i64,
        ),
    ];
    for (name, help, value) in gauges {
        e.family(name, Kind::Gauge, help);
        e.sample(&[], value);
    }
    e.family(
        "strom_metadata_quorum_follower_lag_entries",
        Kind::Gauge,
        "On the leader: entries each other node's log is behind the leader's",
    );
    for (node, matched) in m.replication.iter().flatten() {
        if *node == m.id {
            continue;
        }
        let behind = last_log.saturating_sub(matched.map_or(0, |l| l.index));
        e.sample(&[("node", &node.to_string())], behind);
    }
}
