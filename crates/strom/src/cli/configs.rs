//! `strom configs describe|alter` for topics and brokers, as `kafka-configs.sh` does them.

use super::{print_json, print_table, Common, Output};
use clap::{Args, Subcommand};
use serde_json::json;
use strom_client::ResourceType;

#[derive(Args, Debug)]
pub struct Entity {
    /// A topic's configs.
    #[arg(long, conflicts_with_all = ["broker", "entity_type"])]
    topic: Option<String>,
    /// A broker's configs (its node id).
    #[arg(long, conflicts_with = "entity_type")]
    broker: Option<String>,
    /// Kafka's form: topics or brokers (with --entity-name).
    #[arg(long = "entity-type", requires = "entity_name")]
    entity_type: Option<String>,
    #[arg(long = "entity-name")]
    entity_name: Option<String>,
}

impl Entity {
    fn resolve(&self) -> anyhow::Result<(ResourceType, String)> {
        match (
            &self.topic,
            &self.broker,
            &self.entity_type,
            &self.entity_name,
        ) {
            (Some(t), None, None, _) => Ok((ResourceType::Topic, t.clone())),
            (None, Some(b), None, _) => Ok((ResourceType::Broker, b.clone())),
            (None, None, Some(kind), Some(name)) => match kind.as_str() {
                "topics" | "topic" => Ok((ResourceType::Topic, name.clone())),
                "brokers" | "broker" => Ok((ResourceType::Broker, name.clone())),
                _ => anyhow::bail!("--entity-type {kind}: expected topics or brokers"),
            },
            _ => anyhow::bail!("name what to configure: --topic NAME or --broker ID"),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ConfigsCommand {
    /// Show every config with its value and source.
    Describe {
        #[command(flatten)]
        entity: Entity,
        /// Only the configs set on this topic or broker (not defaults).
        #[arg(long = "dynamic-only")]
        dynamic_only: bool,
    },
    /// Set or remove configs.
    Alter {
        #[command(flatten)]
        entity: Entity,
        /// KEY=VALUE pairs, comma-separated or repeated.
        #[arg(long = "add-config")]
        add: Vec<String>,
        /// Keys to remove (back to the default), comma-separated or repeated.
        #[arg(long = "delete-config")]
        delete: Vec<String>,
    },
}

pub async fn run(cmd: ConfigsCommand, common: &Common) -> anyhow::Result<()> {
    let admin = common.admin().await?;
    match cmd {
        ConfigsCommand::Describe {
            entity,
            dynamic_only,
        } => {
            let (kind, name) = entity.resolve()?;
            let entries: Vec<_> = admin
                .describe_configs(kind, &name)
                .await?
                .into_iter()
                .filter(|c| !dynamic_only || c.source.starts_with("DYNAMIC"))
                .collect();
            let shown = |c: &strom_client::admin::ConfigEntry| {
                if c.sensitive {
                    "[hidden]".to_string()
                } else {
                    c.value.clone().unwrap_or_else(|| "null".into())
                }
            };
            match common.output {
                Output::Json => print_json(&json!(entries
                    .iter()
                    .map(|c| json!({"name": c.name, "value": if c.sensitive { None } else { c.value.clone() },
                        "source": c.source, "read_only": c.read_only, "sensitive": c.sensitive}))
                    .collect::<Vec<_>>())),
                Output::Table => print_table(
                    &["NAME", "VALUE", "SOURCE"],
                    &entries
                        .iter()
                        .map(|c| vec![c.name.clone(), shown(c), c.source.to_string()])
                        .collect::<Vec<_>>(),
                ),
            }
        }
        ConfigsCommand::Alter {
            entity,
            add,
            delete,
        } => {
            let (kind, name) = entity.resolve()?;
            let ops = super::alter_ops(&add, &delete)?;
            if ops.is_empty() {
                anyhow::bail!("nothing to alter: give --add-config or --delete-config");
            }
            admin.alter_configs(kind, &name, &ops).await?;
            match common.output {
                Output::Table => println!("Completed updating config for {name}."),
                Output::Json => print_json(&json!({"altered": name})),
            }
        }
    }
    Ok(())
}
