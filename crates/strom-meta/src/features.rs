//! Kafka's feature flags (KIP-584): the levels this broker supports, the levels the cluster
//! has finalized (defaults, then `FeatureLevel` records), and UpdateFeatures' rules.
//!
//! Only features whose level changes what Strom does are listed: `metadata.version` (Strom
//! speaks Kafka 4.1's protocol: 3.3-IV3 to 4.1-IV1), `group.version` (1: the KIP-848
//! consumer protocol is served), `eligible.leader.replicas.version` (1: KIP-966's ELR) and
//! `transaction.version` (2: Kafka 4's transaction protocol v2, KIP-890, which Java clients
//! use only when it is finalized at 2). A feature Strom does not implement (`kraft.version`'s
//! dynamic voters, ...) is not supported, so clients do not use it: its issue adds it here.

use crate::error::ApiError;
use crate::image::MetadataImage;
use crate::record::MetadataRecord;
use std::collections::BTreeMap;

pub const METADATA_VERSION: &str = "metadata.version";
pub const GROUP_VERSION: &str = "group.version";
/// 1: eligible leader replicas are kept and elected (KIP-966, `elr.rs`), as on a new Kafka
/// 4.1 cluster.
pub const ELR_VERSION: &str = "eligible.leader.replicas.version";
/// 2: clients may use transaction protocol v2 (every transaction ends with a new epoch,
/// partitions join implicitly); the broker serves both protocols at any level.
pub const TRANSACTION_VERSION: &str = "transaction.version";

/// A supported feature: its name, the levels this broker supports and the level a new
/// cluster starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supported {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    pub default: i16,
}

pub const SUPPORTED: &[Supported] = &[
    Supported {
        name: ELR_VERSION,
        min: 0,
        max: 1,
        default: 1,
    },
    Supported {
        name: GROUP_VERSION,
        min: 0,
        max: 1,
        default: 1,
    },
    Supported {
        name: METADATA_VERSION,
        min: 7,
        max: 27,
        default: 27,
    },
    Supported {
        name: TRANSACTION_VERSION,
        min: 0,
        max: 2,
        default: 2,
    },
];

/// UpdateFeatures' `UpgradeType` (v0's `AllowDowngrade` maps to a safe downgrade).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeType {
    Upgrade,
    SafeDowngrade,
    UnsafeDowngrade,
    Unknown,
}

impl UpgradeType {
    pub fn from_code(code: i8) -> UpgradeType {
        match code {
            1 => UpgradeType::Upgrade,
            2 => UpgradeType::SafeDowngrade,
            3 => UpgradeType::UnsafeDowngrade,
            _ => UpgradeType::Unknown,
        }
    }
}

impl MetadataImage {
    /// Every finalized feature with its level (0: off), as of this image.
    pub fn finalized_features(&self) -> BTreeMap<String, i16> {
        let mut out: BTreeMap<String, i16> = SUPPORTED
            .iter()
            .map(|s| (s.name.to_string(), s.default))
            .collect();
        for (name, level) in &self.features {
            out.insert(name.clone(), *level);
        }
        out
    }

    /// The finalized level of one feature (0 when unknown or off).
    pub fn feature_level(&self, name: &str) -> i16 {
        self.finalized_features().get(name).copied().unwrap_or(0)
    }
}

/// UpdateFeatures as Kafka's controller decides it: every update valid, else the first
/// error (nothing changes); the records that set the new levels.
pub fn update_features(
    img: &MetadataImage,
    updates: &[(String, i16, UpgradeType)],
    node_id: i32,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let current = img.finalized_features();
    let mut records = Vec::new();
    for (name, level, upgrade) in updates {
        let invalid = |why: &str| {
            ApiError::InvalidUpdateVersion(if name == METADATA_VERSION {
                format!("Invalid metadata.version {level}. {why}")
            } else {
                format!("Invalid update version {level} for feature {name}. {why}")
            })
        };
        if *upgrade == UpgradeType::Unknown {
            return Err(invalid(
                "The controller does not support the given upgrade type.",
            ));
        }
        if *level < 0 {
            return Err(invalid("A feature version cannot be less than 0."));
        }
        let range = SUPPORTED.iter().find(|s| s.name == name);
        match range {
            Some(s) if (s.min..=s.max).contains(level) => {}
            Some(s) => {
                let versions = if s.min == s.max {
                    s.min.to_string()
                } else {
                    format!("{}-{}", s.min, s.max)
                };
                return Err(invalid(&format!(
                    "Local controller {node_id} only supports versions {versions}"
                )));
            }
            None => {
                return Err(invalid(&format!(
                    "Local controller {node_id} does not support this feature."
                )))
            }
        }
        let now = current.get(name).copied().unwrap_or(0);
        if *level < now && *upgrade == UpgradeType::Upgrade {
            return Err(invalid(
                "Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade.",
            ));
        }
        if *level > now && *upgrade != UpgradeType::Upgrade {
            return Err(invalid("Can't downgrade to a newer version."));
        }
        if name == METADATA_VERSION && *level < now && *upgrade == UpgradeType::UnsafeDowngrade {
            return Err(invalid(
                "Unsafe metadata downgrade is not supported in this version.",
            ));
        }
        records.push(MetadataRecord::FeatureLevel {
            name: name.clone(),
            level: *level,
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(
        img: &mut MetadataImage,
        name: &str,
        level: i16,
        t: UpgradeType,
    ) -> Result<(), String> {
        let records =
            update_features(img, &[(name.into(), level, t)], 1).map_err(|e| e.to_string())?;
        for r in &records {
            img.apply(r).unwrap();
        }
        Ok(())
    }

    #[test]
    fn defaults_then_updates_with_kafkas_rules() {
        let mut img = MetadataImage::default();
        assert_eq!(img.feature_level(GROUP_VERSION), 1);
        assert_eq!(img.feature_level(METADATA_VERSION), 27);
        assert_eq!(img.feature_level(TRANSACTION_VERSION), 2);
        let e = update(&mut img, GROUP_VERSION, 0, UpgradeType::Upgrade).unwrap_err();
        assert!(e.contains("without setting the upgrade type"), "{e}");
        update(&mut img, GROUP_VERSION, 0, UpgradeType::SafeDowngrade).unwrap();
        assert_eq!(img.feature_level(GROUP_VERSION), 0);
        let e = update(&mut img, GROUP_VERSION, 1, UpgradeType::SafeDowngrade).unwrap_err();
        assert!(e.contains("Can't downgrade to a newer version."), "{e}");
        update(&mut img, GROUP_VERSION, 1, UpgradeType::Upgrade).unwrap();
        assert_eq!(img.feature_level(GROUP_VERSION), 1);
        let e = update(&mut img, GROUP_VERSION, 2, UpgradeType::Upgrade).unwrap_err();
        assert_eq!(
            e,
            "Invalid update version 2 for feature group.version. Local controller 1 only supports versions 0-1"
        );
        let e = update(&mut img, TRANSACTION_VERSION, 3, UpgradeType::Upgrade).unwrap_err();
        assert_eq!(
            e,
            "Invalid update version 3 for feature transaction.version. Local controller 1 only supports versions 0-2"
        );
        update(&mut img, TRANSACTION_VERSION, 1, UpgradeType::SafeDowngrade).unwrap();
        assert_eq!(img.feature_level(TRANSACTION_VERSION), 1);
        update(&mut img, TRANSACTION_VERSION, 2, UpgradeType::Upgrade).unwrap();
        assert_eq!(img.feature_level(TRANSACTION_VERSION), 2);
        let e = update(&mut img, "nope", 1, UpgradeType::Upgrade).unwrap_err();
        assert!(
            e.ends_with("Local controller 1 does not support this feature."),
            "{e}"
        );
        let e = update(&mut img, METADATA_VERSION, 20, UpgradeType::UnsafeDowngrade).unwrap_err();
        assert!(e.starts_with("Invalid metadata.version 20."), "{e}");
        let e = update(&mut img, METADATA_VERSION, 3, UpgradeType::SafeDowngrade).unwrap_err();
        assert!(e.contains("only supports versions 7-27"), "{e}");
        // One bad update refuses them all.
        let both = [
            (GROUP_VERSION.to_string(), 0, UpgradeType::SafeDowngrade),
            ("nope".to_string(), 1, UpgradeType::Upgrade),
        ];
        assert!(update_features(&img, &both, 1).is_err());
    }
}
