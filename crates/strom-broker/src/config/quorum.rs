//! The metadata quorum's keys, with Kafka's KRaft names and checks: `process.roles`,
//! `controller.quorum.voters` (a static quorum, `id@host:port,...`) and
//! `controller.listener.names`. No voters given: a single node, its own only voter, which
//! needs no controller listener (`strom broker` with no flags).

use super::{ConfigError, Endpoint};

/// One voter of a static quorum: where the others dial it (its controller listener as they
/// reach it, which may differ from what it binds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// `process.roles` holds `broker`.
    pub broker: bool,
    /// `process.roles` holds `controller`.
    pub controller: bool,
    /// Empty: this node alone.
    pub voters: Vec<Voter>,
    /// `controller.listener.names`: listeners that serve the quorum, not clients.
    pub controller_listener_names: Vec<String>,
}

impl QuorumConfig {
    /// A single node: no voters listed.
    pub fn is_single_node(&self) -> bool {
        self.voters.is_empty()
    }

    /// Whether a listener serves the quorum rather than clients.
    pub fn is_controller_listener(&self, name: &str) -> bool {
        self.controller_listener_names.iter().any(|n| n == name)
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `controller.quorum.voters`: `id@host:port` entries, each id once.
pub fn parse_voters(value: &str) -> Result<Vec<Voter>, ConfigError> {
    let bad = |why: String| {
        ConfigError(format!(
            "invalid value {value:?} for controller.quorum.voters: {why}"
        ))
    };
    let mut voters: Vec<Voter> = Vec::new();
    for item in list(value) {
        let (id, addr) = item
            .split_once('@')
            .ok_or_else(|| bad(format!("{item:?} is not id@host:port")))?;
        let id: i32 = id
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad(format!("{id:?} is not a node id")))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad(format!("{item:?} has no port")))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(format!("{port:?} is not a port")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad(format!("{item:?} has no host")));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(bad(format!("node {id} is listed twice")));
        }
        voters.push(Voter {
            id,
            host: host.to_string(),
            port,
        });
    }
    Ok(voters)
}

/// The quorum keys, checked against the node id and the listeners as Kafka checks them.
pub fn parse(
    get: &dyn Fn(&str) -> String,
    given: &dyn Fn(&str) -> bool,
    node_id: i32,
    listeners: &[Endpoint],
) -> Result<QuorumConfig, ConfigError> {
    let roles = list(&get("process.roles"));
    let mut broker = false;
    let mut controller = false;
    for r in &roles {
        match r.as_str() {
            "broker" if !broker => broker = true,
            "controller" if !controller => controller = true,
            _ => {
                return Err(ConfigError(format!(
                    "invalid value {:?} for process.roles: expected broker, controller or both",
                    get("process.roles")
                )))
            }
        }
    }
    if !broker || !controller {
        return Err(ConfigError(
            "process.roles: dedicated brokers and dedicated controllers are not supported yet; \
             every node is broker,controller"
                .into(),
        ));
    }
    // Kafka's own single-node server.properties names itself as the bootstrap server of a
    // dynamic quorum (KIP-853, formatted --standalone): with no static voters that is a
    // one-voter quorum, as here. Nodes joining through bootstrap servers are not supported
    // yet.
    if given("controller.quorum.bootstrap.servers") && !given("controller.quorum.voters") {
        tracing::info!(
            "controller.quorum.bootstrap.servers without controller.quorum.voters: this node \
             is a one-voter quorum (as Kafka's --standalone)"
        );
    }
    let voters = parse_voters(&get("controller.quorum.voters"))?;
    let names = list(&get("controller.listener.names"));
    let config = QuorumConfig {
        broker,
        controller,
        voters,
        controller_listener_names: names,
    };
    check(&config, node_id, listeners)?;
    Ok(config)
}

/// Kafka's start-up checks of a quorum configuration.
fn check(q: &QuorumConfig, node_id: i32, listeners: &[Endpoint]) -> Result<(), ConfigError> {
    if q.voters.is_empty() {
        return Ok(());
    }
    if !q.voters.iter().any(|v| v.id == node_id) {
        return Err(ConfigError(format!(
            "node.id {node_id} is not in controller.quorum.voters: a node with the controller \
             role must be one of the voters"
        )));
    }
    let Some(first) = q.controller_listener_names.first() else {
        return Err(ConfigError(
            "controller.listener.names is empty: a controller needs a listener named there".into(),
        ));
    };
    if !listeners.iter().any(|l| &l.name == first) {
        return Err(ConfigError(format!(
            "controller.listener.names names {first}, which is not in listeners"
        )));
    }
    if listeners.iter().all(|l| q.is_controller_listener(&l.name)) {
        return Err(ConfigError(
            "listeners has no listener for clients (every one is a controller listener)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn quorum(keys: &[(&str, &str)], node_id: i32) -> Result<QuorumConfig, ConfigError> {
        let map: BTreeMap<&str, &str> = keys.iter().copied().collect();
        let get = |k: &str| {
            map.get(k).map(|v| v.to_string()).unwrap_or_else(|| {
                if k == "process.roles" {
                    "broker,controller".into()
                } else {
                    String::new()
                }
            })
        };
        let given = |k: &str| map.contains_key(k);
        let listeners = Endpoint::parse_list(
            "listeners",
            map.get("listeners").copied().unwrap_or("PLAINTEXT://:9092"),
        )?;
        parse(&get, &given, node_id, &listeners)
    }

    #[test]
    fn a_static_quorum_is_checked_as_kafka_checks_it() {
        let three = "1@a:9093,2@b:9093,3@[::1]:9093";
        let ok = quorum(
            &[
                ("controller.quorum.voters", three),
                ("controller.listener.names", "CONTROLLER"),
                ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ],
            2,
        )
        .unwrap();
        assert_eq!(ok.voters.len(), 3);
        assert_eq!(ok.voters[2].host, "::1");
        assert!(ok.is_controller_listener("CONTROLLER"));
        assert!(quorum(&[], 1).unwrap().is_single_node());
        let err = |keys: &[(&str, &str)], id| quorum(keys, id).unwrap_err().0;
        assert!(err(&[("controller.quorum.voters", "1@a:1,1@b:2")], 1).contains("twice"));
        assert!(err(&[("controller.quorum.voters", "x@a:1")], 1).contains("not a node id"));
        assert!(err(&[("controller.quorum.voters", "1@a")], 1).contains("no port"));
        assert!(err(&[("controller.quorum.voters", "2@a:1")], 1).contains("not in"));
        assert!(
            err(&[("controller.quorum.voters", "1@a:1")], 1).contains("controller.listener.names")
        );
        assert!(err(&[("process.roles", "broker")], 1).contains("not supported yet"));
        assert!(err(&[("process.roles", "broker,broker")], 1).contains("invalid value"));
        assert!(quorum(&[("controller.quorum.bootstrap.servers", "a:1")], 1)
            .unwrap()
            .is_single_node());
    }
}
