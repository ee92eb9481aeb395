//! Fetching from the closest replica (KIP-392). With `replica.selector.class` naming Kafka's
//! `RackAwareReplicaSelector`, a leader answers a consumer that names its rack (Fetch v11+
//! `RackId`) with `PreferredReadReplica` when an in-sync replica in that rack, other than
//! itself, holds the fetch offset: no records, the client fetches there next. A follower
//! serves any consumer's Fetch v11+ up to its own high watermark (Kafka's rule: from v11 a
//! consumer fetch need not go to the leader).

use crate::broker::Broker;
use crate::partition::Partition;

/// The replica `p`'s leader sends a consumer in `rack` to, fetching from `fetch_offset`, if
/// not itself (Kafka's `RackAwareReplicaSelector` over `findPreferredReadReplica`'s view):
/// the replicas in the ISR whose logs hold the offset, on live brokers in the consumer's
/// rack; the leader when it is one of them, else the one whose log reaches furthest.
pub fn preferred(broker: &Broker, p: &Partition, rack: &str, fetch_offset: i64) -> Option<i32> {
    if !broker.config.rack_aware_reads || rack.is_empty() {
        return None;
    }
    let image = broker.meta.image();
    let in_rack = |id: i32| {
        image
            .brokers
            .get(&id)
            .is_some_and(|b| !b.fenced && b.rack.as_deref() == Some(rack))
    };
    if in_rack(broker.node_id) {
        return None;
    }
    p.read_replicas(fetch_offset)
        .into_iter()
        .filter(|(id, _)| in_rack(*id))
        .max_by_key(|(id, reach)| (*reach, -id))
        .map(|(id, _)| id)
}
