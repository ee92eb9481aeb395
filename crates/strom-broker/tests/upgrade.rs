//! A data dir from the single-node release opens unchanged: its metadata log (plain batches
//! of JSON records in `__cluster_metadata-0`, no `quorum-state`) becomes the first snapshot of
//! a one-voter Raft quorum, and topics, configs and records are all there, before and after
//! a second restart.

use kafka_protocol::messages::*;
use strom_log::{LogConfig, LogDir, LogDirOptions};
use strom_meta::{ConfigResource, MetadataRecord};
use strom_proto::BatchBuilder;
use uuid::Uuid;

mod common;
use common::*;

/// Writes what the single-node release wrote: meta.properties, the metadata log (one batch
/// per commit, one JSON record value per record) and a partition with 3 records.
fn write_single_node_release(data: &std::path::Path, topic_id: Uuid) {
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(
        data.join("meta.properties"),
        "#\nversion=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=1\n",
    )
    .unwrap();
    let dir = LogDir::open(data, LogDirOptions::default(), &|_| LogConfig::default()).unwrap();
    let meta = dir
        .create("__cluster_metadata", 0, LogConfig::default())
        .unwrap();
    let commits = vec![
        vec![MetadataRecord::RegisterBroker {
            node_id: 1,
            host: "localhost".into(),
            port: 9092,
            rack: None,
            log_dirs: Vec::new(),
            incarnation: None,
        }],
        vec![
            MetadataRecord::Topic {
                name: "legacy".into(),
                topic_id,
            },
            MetadataRecord::new_partition(topic_id, 0, &[1]),
        ],
        vec![MetadataRecord::Config {
            resource: ConfigResource::Topic,
            name: "legacy".into(),
            key: "retention.ms".into(),
            value: Some("12345".into()),
        }],
    ];
    for records in commits {
        let mut b = BatchBuilder::new(1_000);
        for r in &records {
            b.push(None, Some(&r.encode()), 1_000);
        }
        meta.append(&mut b.build()).unwrap();
    }
    let log = dir.create("legacy", 0, LogConfig::default()).unwrap();
    let mut b = BatchBuilder::new(1_000);
    for v in [b"a", b"b", b"c"] {
        b.push(None, Some(v), 1_000);
    }
    log.append(&mut b.build()).unwrap();
    dir.close().unwrap();
}

fn check(c: &mut Conn, topic_id: Uuid, next_offset: i64) {
    let mut all = MetadataRequest::default();
    all.topics = None;
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &all);
    let t = r
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("legacy"))
        .expect("the topic survived");
    assert_eq!(t.topic_id, topic_id);
    assert_eq!(t.partitions.len(), 1);
    assert_eq!(
        topic_config(c, "legacy", "retention.ms").as_deref(),
        Some("12345")
    );
    let got = fetch_all(c, "legacy");
    assert_eq!(got.len() as i64, next_offset);
    assert_eq!(got[0].2.as_deref(), Some(&b"a"[..]));
}

#[test]
fn a_single_node_release_data_dir_opens_unchanged() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let topic_id = Uuid::from_u128(0x5eed);
    write_single_node_release(&tmp.path().join("data"), topic_id);
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    check(&mut c, topic_id, 3);
    let r = produce(&mut c, "legacy", 0, batch_at(&[1_000], 4), -1);
    assert_eq!((r.error_code, r.base_offset), (0, 3));
    rt.block_on(b.shutdown()).unwrap();
    let meta_dir = tmp.path().join("data/__cluster_metadata-0");
    assert!(meta_dir.join("quorum-state").exists());
    // Restarted: now the quorum's own format.
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    check(&mut c, topic_id, 4);
    assert_eq!(create_topic(&mut c, "after", 1), 0);
    rt.block_on(b.shutdown()).unwrap();
}

/// The topics `c`'s broker lists.
fn topics(c: &mut Conn) -> Vec<String> {
    let mut all = MetadataRequest::default();
    all.topics = None;
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &all);
    let mut names: Vec<String> = r
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    names
}

#[test]
fn the_image_is_snapshotted_after_its_record_bytes_and_restored() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let keys = [("metadata.log.max.record.bytes.between.snapshots", "4000")];
    let b = start(&rt, tmp.path(), &keys);
    let mut c = Conn::open(b.addr());
    let meta_dir = tmp.path().join("data/__cluster_metadata-0");
    let snapshots = || {
        std::fs::read_dir(&meta_dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".checkpoint")
            })
            .count()
    };
    assert_eq!(snapshots(), 0, "a few records are no reason");
    for i in 0..40 {
        assert_eq!(create_topic(&mut c, &format!("t{i:02}"), 1), 0);
    }
    let started = std::time::Instant::now();
    while snapshots() == 0 {
        assert!(
            started.elapsed().as_secs() < 10,
            "no snapshot after 40 topics"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let before = topics(&mut c);
    assert_eq!(before.len(), 40);
    rt.block_on(b.shutdown()).unwrap();
    let b = start(&rt, tmp.path(), &keys);
    let mut c = Conn::open(b.addr());
    assert_eq!(
        topics(&mut c),
        before,
        "restored from the snapshot and the log after it"
    );
    rt.block_on(b.shutdown()).unwrap();
}
