//! `MetadataDelta`: what a run of records changed in the image, in the terms a broker acts on
//! (which topics to reconcile, whether broker-wide configs moved), so that applying a change
//! costs in proportion to the change, not to the size of the image.

use crate::image::MetadataImage;
use crate::record::{ConfigResource, MetadataRecord};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataDelta {
    /// Topics created, deleted, or with partitions or configs changed, by name.
    pub topics: BTreeSet<String>,
    /// Dynamic broker configs changed: any topic's effective config may have changed.
    pub broker_configs: bool,
    /// Brokers registered or changed.
    pub brokers: bool,
    /// Feature levels changed.
    pub features: bool,
    /// Everything may have changed (a snapshot was loaded, or the broker starts): reconcile
    /// every topic, and what is on disk that no topic owns.
    pub everything: bool,
}

impl MetadataDelta {
    /// Notes what `record` changes; called with the image as it is before the record.
    pub fn record(&mut self, before: &MetadataImage, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker { .. } | MetadataRecord::BrokerFenced { .. } => {
                self.brokers = true
            }
            MetadataRecord::Topic { name, .. } => {
                self.topics.insert(name.clone());
            }
            MetadataRecord::Partition { topic_id, .. }
            | MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = before.topic_names.get(topic_id) {
                    self.topics.insert(name.clone());
                }
            }
            MetadataRecord::Config {
                resource: ConfigResource::Topic,
                name,
                ..
            } => {
                self.topics.insert(name.clone());
            }
            MetadataRecord::Config {
                resource: ConfigResource::Broker,
                ..
            } => self.broker_configs = true,
            MetadataRecord::FeatureLevel { .. } => self.features = true,
            MetadataRecord::ProducerIds { .. } | MetadataRecord::ClusterId { .. } => {}
        }
    }

    /// Adds what `other` changed.
    pub fn merge(&mut self, other: MetadataDelta) {
        self.topics.extend(other.topics);
        self.broker_configs |= other.broker_configs;
        self.brokers |= other.brokers;
        self.features |= other.features;
        self.everything |= other.everything;
    }

    /// Everything may have changed (a snapshot was loaded): every topic of both images.
    pub fn everything(before: &MetadataImage, after: &MetadataImage) -> MetadataDelta {
        MetadataDelta {
            topics: before
                .topics
                .keys()
                .chain(after.topics.keys())
                .cloned()
                .collect(),
            broker_configs: true,
            brokers: true,
            features: true,
            everything: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &MetadataDelta::default()
    }
}
