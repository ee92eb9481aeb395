//! The metadata quorum's keys, with Kafka's KRaft names and checks: `process.roles`
//! (`broker`, `controller` or both), either a static quorum (`controller.quorum.voters`,
//! `id@host:port,...`) or a dynamic one (`controller.quorum.bootstrap.servers`, KIP-853:
//! the voters live in the log), and `controller.listener.names`. Neither given: a single
//! node, its own only voter, which needs no controller listener (`strom broker` with no
//! flags).

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
    /// A static quorum's voters; empty for a single node or a dynamic quorum.
    pub voters: Vec<Voter>,
    /// A dynamic quorum's contact points (`host:port`), tried in order; the node that
    /// answers at the first one may start the quorum alone (Kafka's `--standalone`).
    pub bootstrap_servers: Vec<(String, u16)>,
    /// `controller.listener.names`: listeners that serve the quorum, not clients.
    pub controller_listener_names: Vec<String>,
}

impl QuorumConfig {
    /// A single node: no voters and no bootstrap servers.
    pub fn is_single_node(&self) -> bool {
        self.voters.is_empty() && self.bootstrap_servers.is_empty()
    }

    /// A dynamic quorum (KIP-853): the voter set is in the log, not in the configuration.
    pub fn is_dynamic(&self) -> bool {
        self.voters.is_empty() && !self.bootstrap_servers.is_empty()
    }

    /// A voter of the static quorum.
    pub fn is_static_voter(&self, node_id: i32) -> bool {
        self.voters.iter().any(|v| v.id == node_id)
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

/// `host:port` (an IPv6 host in brackets).
fn host_port(item: &str) -> Result<(String, u16), String> {
    let (host, port) = item
        .rsplit_once(':')
        .ok_or_else(|| format!("{item:?} has no port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{port:?} is not a port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{item:?} has no host"));
    }
    Ok((host.to_string(), port))
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
        let (host, port) = host_port(addr).map_err(bad)?;
        if voters.iter().any(|v| v.id == id) {
            return Err(bad(format!("node {id} is listed twice")));
        }
        voters.push(Voter { id, host, port });
    }
    Ok(voters)
}

/// `controller.quorum.bootstrap.servers`: `host:port` entries.
fn parse_bootstrap(value: &str) -> Result<Vec<(String, u16)>, ConfigError> {
    list(value)
        .iter()
        .map(|item| host_port(item))
        .collect::<Result<_, _>>()
        .map_err(|why| {
            ConfigError(format!(
                "invalid value {value:?} for controller.quorum.bootstrap.servers: {why}"
            ))
        })
}

fn parse_roles(value: &str) -> Result<(bool, bool), ConfigError> {
    let (mut broker, mut controller) = (false, false);
    for r in list(value) {
        match r.as_str() {
            "broker" if !broker => broker = true,
            "controller" if !controller => controller = true,
            _ => {
                return Err(ConfigError(format!(
                    "invalid value {value:?} for process.roles: expected broker, controller or both"
                )))
            }
        }
    }
    if !broker && !controller {
        return Err(ConfigError(
            "process.roles is empty: expected broker, controller or both".into(),
        ));
    }
    Ok((broker, controller))
}

/// The quorum keys, checked against the node id and the listeners as Kafka checks them.
pub fn parse(
    get: &dyn Fn(&str) -> String,
    given: &dyn Fn(&str) -> bool,
    node_id: i32,
    listeners: &[Endpoint],
) -> Result<QuorumConfig, ConfigError> {
    let (broker, controller) = parse_roles(&get("process.roles"))?;
    let voters = parse_voters(&get("controller.quorum.voters"))?;
    let bootstrap_servers = if voters.is_empty() && given("controller.quorum.bootstrap.servers") {
        parse_bootstrap(&get("controller.quorum.bootstrap.servers"))?
    } else {
        Vec::new()
    };
    let config = QuorumConfig {
        broker,
        controller,
        voters,
        bootstrap_servers,
        controller_listener_names: list(&get("controller.listener.names")),
    };
    check(&config, node_id, listeners)?;
    Ok(config)
}

/// Kafka's start-up checks of a quorum configuration.
fn check(q: &QuorumConfig, node_id: i32, listeners: &[Endpoint]) -> Result<(), ConfigError> {
    let err = |m: &str| Err(ConfigError(m.into()));
    if q.is_single_node() {
        if !(q.broker && q.controller) {
            return err(
                "a node with one role needs the others: set controller.quorum.voters or \
                 controller.quorum.bootstrap.servers (a lone node is broker,controller)",
            );
        }
        return Ok(());
    }
    let voter = q.is_static_voter(node_id);
    if q.controller && !q.voters.is_empty() && !voter {
        return Err(ConfigError(format!(
            "node.id {node_id} is not in controller.quorum.voters: a node with the controller \
             role must be one of the voters"
        )));
    }
    if !q.controller && voter {
        return Err(ConfigError(format!(
            "node.id {node_id} is in controller.quorum.voters, but process.roles has no \
             controller: a broker-only node must not be a voter"
        )));
    }
    let clients = listeners
        .iter()
        .filter(|l| !q.is_controller_listener(&l.name))
        .count();
    if q.controller {
        let Some(first) = q.controller_listener_names.first() else {
            return err(
                "controller.listener.names is empty: a controller needs a listener named there",
            );
        };
        if !listeners.iter().any(|l| &l.name == first) {
            return Err(ConfigError(format!(
                "controller.listener.names names {first}, which is not in listeners"
            )));
        }
    }
    if q.broker && clients == 0 {
        return err("listeners has no listener for clients (every one is a controller listener)");
    }
    if !q.broker && clients > 0 {
        return err(
            "process.roles=controller: listeners may hold only the controller listeners \
             named in controller.listener.names",
        );
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
        assert!(err(&[("process.roles", "broker")], 1).contains("needs the others"));
        assert!(err(&[("process.roles", "broker,broker")], 1).contains("invalid value"));
        assert!(err(&[("process.roles", "")], 1).contains("empty"));
    }

    #[test]
    fn dedicated_roles_are_checked_as_kafka_checks_them() {
        let voters = ("controller.quorum.voters", "1@a:9093,2@b:9093,3@c:9093");
        let names = ("controller.listener.names", "CONTROLLER");
        let broker = quorum(&[voters, names, ("process.roles", "broker")], 4).unwrap();
        assert!(broker.broker && !broker.controller);
        let controller = [
            voters,
            names,
            ("process.roles", "controller"),
            ("listeners", "CONTROLLER://:9093"),
        ];
        let c = quorum(&controller, 2).unwrap();
        assert!(c.controller && !c.broker);
        let err = |keys: &[(&str, &str)], id| quorum(keys, id).unwrap_err().0;
        assert!(err(&[voters, names, ("process.roles", "broker")], 1).contains("must not be"));
        assert!(err(&controller, 4).contains("not in"));
        let mixed = [
            voters,
            names,
            ("process.roles", "controller"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
        ];
        assert!(err(&mixed, 1).contains("only the controller listeners"));
    }

    #[test]
    fn a_dynamic_quorum_has_bootstrap_servers() {
        let q = quorum(
            &[
                ("controller.quorum.bootstrap.servers", "a:9093, [::1]:9094"),
                ("controller.listener.names", "CONTROLLER"),
                ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ],
            7,
        )
        .unwrap();
        assert!(q.is_dynamic() && !q.is_single_node());
        assert_eq!(q.bootstrap_servers[1], ("::1".to_string(), 9094));
        let err = quorum(&[("controller.quorum.bootstrap.servers", "a")], 1).unwrap_err();
        assert!(err.0.contains("no port"), "{}", err.0);
        // Static voters win over bootstrap servers, as in Kafka.
        let both = quorum(
            &[
                ("controller.quorum.bootstrap.servers", "a:1"),
                ("controller.quorum.voters", "1@a:1"),
                ("controller.listener.names", "CONTROLLER"),
                ("listeners", "PLAINTEXT://:9092,CONTROLLER://:1"),
            ],
            1,
        )
        .unwrap();
        assert!(!both.is_dynamic());
    }
}
