//! The broker on the wire: in-process brokers on ephemeral ports, spoken to with raw frames
//! encoded by the `kafka-protocol` crate. Bad input must get Kafka's error codes or a closed
//! connection — never a panic, a hang, or damage to other connections.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use strom_broker::{Broker, BrokerConfig};
use strom_proto::BatchBuilder;

mod common;
use common::*;
use strom_testkit::requests::{produce, produce_request};

fn batch(n: usize, value: &[u8]) -> Bytes {
    let mut b = BatchBuilder::new(1_000);
    for i in 0..n {
        b.push(
            Some(format!("k{i}").as_bytes()),
            Some(value),
            1_000 + i as i64,
        );
    }
    Bytes::from(b.build())
}

fn api_versions_ok(addr: SocketAddr) {
    let mut c = Conn::open(addr);
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
}

#[test]
fn api_versions_lists_what_is_served_and_refuses_unknown_versions_with_the_list() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
    for (key, min, max) in strom_broker::handler::SUPPORTED {
        assert!(r
            .api_keys
            .iter()
            .any(|k| k.api_key == *key as i16 && k.min_version == *min && k.max_version == *max));
    }
    assert_eq!(r.api_keys.len(), strom_broker::handler::SUPPORTED.len());

    // ApiVersions v99: UNSUPPORTED_VERSION, in the v0 layout, with the list.
    let mut raw = BytesMut::new();
    raw.put_i16(ApiKey::ApiVersions as i16);
    raw.put_i16(99);
    raw.put_i32(77);
    raw.put_i16(-1); // null client id
    raw.put_u8(0); // tagged fields
    let mut frame = (raw.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&raw);
    c.send_raw(&frame);
    let mut resp = c.read_frame().unwrap();
    assert_eq!(resp.get_i32(), 77);
    let v0 = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(v0.error_code, 35);
    assert!(!v0.api_keys.is_empty());
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn oversized_unknown_and_malformed_frames_close_only_their_connection() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[("socket.request.max.bytes", "1000")]);
    let addr = b.addr();
    let mut bystander = Conn::open(addr);
    assert_eq!(create_topic(&mut bystander, "safe", 1), 0);

    // Larger than socket.request.max.bytes: refused on the size alone, body never sent.
    let mut c = Conn::open(addr);
    c.send_raw(&100_000i32.to_be_bytes());
    assert!(c.closed(), "oversized frame closes the connection");
    let mut c = Conn::open(addr);
    c.send_raw(&(-5i32).to_be_bytes());
    assert!(c.closed(), "negative size closes the connection");

    // Unknown API key.
    let mut c = Conn::open(addr);
    c.send_raw(&[0, 0, 0, 8, 0x7f, 0x00, 0, 0, 0, 0, 0, 1]);
    assert!(c.closed(), "unknown API key closes the connection");

    // A known API at a version nobody supports, and a truncated body.
    let mut c = Conn::open(addr);
    c.send_raw(&[0, 0, 0, 10, 0, 3, 0, 99, 0, 0, 0, 1, 0xff, 0xff]);
    assert!(c.closed());
    let mut c = Conn::open(addr);
    let mut f = c.frame(ApiKey::Metadata, 12, &MetadataRequest::default());
    f.truncate(f.len() - 1);
    let len = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&len.to_be_bytes());
    c.send_raw(&f);
    assert!(c.closed(), "a malformed body closes the connection");

    // The other connection was not disturbed.
    let r = produce(&mut bystander, "safe", 0, batch(3, b"v"), -1);
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    rt.block_on(b.shutdown()).unwrap();
}

/// A 16-byte request claiming a 2^31-element array: the codec reserved that many elements
/// up front and the allocator aborted the whole broker (found by the frame_decode fuzzer).
#[test]
fn a_huge_array_count_does_not_abort_the_broker() {
    let body: [u8; 16] = [
        0x00, 0x25, 0x00, 0x00, 0x00, 0x25, 0x00, 0x00, 0x00, 0x00, 0x25, 0x00, 0x00, 0x00, 0x00,
        0x29,
    ];
    assert!(strom_broker::server::decode(Bytes::copy_from_slice(&body)).is_err());
    let mut huge = BytesMut::new();
    huge.put_i16(ApiKey::CreateTopics as i16);
    huge.put_i16(4);
    huge.put_i32(1);
    huge.put_i16(-1);
    huge.put_i32(i32::MAX); // topics: 2^31 - 1 of them, in a 14-byte frame
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    for frame_body in [&body[..], &huge[..]] {
        let mut c = Conn::open(b.addr());
        let mut f = (frame_body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(frame_body);
        c.send_raw(&f);
        assert!(c.closed());
    }
    api_versions_ok(b.addr());
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn a_corpus_of_malformed_frames_leaves_the_broker_serving() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let addr = b.addr();
    let mut setup = Conn::open(addr);
    assert_eq!(create_topic(&mut setup, "t", 2), 0);

    // For every served API and version: truncations and bit flips of a real request, and a
    // valid header followed by garbage; plus random frames.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut framer = Conn::open(addr);
    for (key, min, max) in strom_broker::handler::SUPPORTED {
        for version in *min..=*max {
            let real = match key {
                ApiKey::Produce => {
                    framer.frame(*key, version, &produce_request("t", 0, batch(2, b"x"), 1))
                }
                ApiKey::Metadata => framer.frame(*key, version, &MetadataRequest::default()),
                _ => framer.frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
            };
            for cut in [5usize, 9, 13, real.len() / 2, real.len() - 1] {
                let mut f = real[..cut.min(real.len())].to_vec();
                let len = (f.len() - 4) as i32;
                f[..4].copy_from_slice(&len.to_be_bytes());
                frames.push(f);
            }
            for _ in 0..4 {
                let mut f = real.clone();
                let at = 8 + (next() as usize) % (f.len() - 8);
                f[at] ^= 1 << (next() % 8);
                frames.push(f);
            }
            let mut garbage = vec![0u8; 8];
            garbage[..2].copy_from_slice(&(*key as i16).to_be_bytes());
            garbage[2..4].copy_from_slice(&version.to_be_bytes());
            garbage.extend((0..(next() % 200)).map(|_| next() as u8));
            let mut f = (garbage.len() as i32).to_be_bytes().to_vec();
            f.extend(garbage);
            frames.push(f);
        }
    }
    for _ in 0..200 {
        let len = (next() % 300) as usize;
        let mut f = (len as i32).to_be_bytes().to_vec();
        f.extend((0..len).map(|_| next() as u8));
        frames.push(f);
    }
    for f in &frames {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(f).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut sink = Vec::new();
        // Either a response or a close: never a hang (the read timeout would fail this).
        let r = s.read_to_end(&mut sink);
        assert!(r.is_ok(), "frame {f:?}: {r:?}");
    }
    // Still serving, with the data intact.
    api_versions_ok(addr);
    let mut c = Conn::open(addr);
    let r = produce(&mut c, "t", 0, batch(1, b"after"), -1);
    assert_eq!(r.error_code, 0);
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn bad_records_and_names_get_kafkas_error_codes() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(
        &rt,
        tmp.path(),
        &[
            ("message.max.bytes", "2000"),
            ("auto.create.topics.enable", "false"),
        ],
    );
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "t", 1), 0);

    let mut corrupt = batch(2, b"value").to_vec();
    let n = corrupt.len();
    corrupt[n - 2] ^= 0xff;
    assert_eq!(
        produce(&mut c, "t", 0, Bytes::from(corrupt), -1).error_code,
        2,
        "CORRUPT_MESSAGE"
    );
    assert_eq!(
        produce(&mut c, "t", 0, batch(1, &[7u8; 3000]), -1).error_code,
        10,
        "MESSAGE_TOO_LARGE"
    );
    assert_eq!(
        produce(&mut c, "nope", 0, batch(1, b"v"), -1).error_code,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(produce(&mut c, "t", 5, batch(1, b"v"), -1).error_code, 3);
    assert_eq!(
        produce(&mut c, "t", 0, batch(1, b"v"), 2).error_code,
        21,
        "INVALID_REQUIRED_ACKS"
    );
    assert_eq!(
        create_topic(&mut c, "bad/name", 1),
        17,
        "INVALID_TOPIC_EXCEPTION"
    );
    assert_eq!(create_topic(&mut c, "..", 1), 17);
    assert_eq!(create_topic(&mut c, "t", 1), 36, "TOPIC_ALREADY_EXISTS");
    assert_eq!(create_topic(&mut c, "zero", 0), 37, "INVALID_PARTITIONS");

    let mut req = MetadataRequest::default();
    let mut t = metadata_request::MetadataRequestTopic::default();
    t.name = Some(topic_name("bad name"));
    req.topics = Some(vec![t.clone()]);
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &req);
    assert_eq!(r.topics[0].error_code, 17);
    t.name = Some(topic_name("missing"));
    req.topics = Some(vec![t]);
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &req);
    assert_eq!(r.topics[0].error_code, 3, "no auto-creation when disabled");

    // Nothing of that reached the log.
    let ok = produce(&mut c, "t", 0, batch(1, b"v"), -1);
    assert_eq!((ok.error_code, ok.base_offset), (0, 0));
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn idempotent_retries_get_their_original_offsets_and_gaps_are_refused() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "idem", 1), 0);
    let mut init = InitProducerIdRequest::default();
    init.transactional_id = None;
    let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &init);
    assert_eq!(r.error_code, 0);
    let pid = r.producer_id.0;
    let seq_batch = |seq: i32, n: usize| {
        let mut b = BatchBuilder::new(0).producer(pid, 0, seq);
        for _ in 0..n {
            b.push(None, Some(b"v"), 0);
        }
        Bytes::from(b.build())
    };
    let first = produce(&mut c, "idem", 0, seq_batch(0, 3), -1);
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    let second = produce(&mut c, "idem", 0, seq_batch(3, 2), -1);
    assert_eq!((second.error_code, second.base_offset), (0, 3));
    let retry = produce(&mut c, "idem", 0, seq_batch(0, 3), -1);
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (0, 0),
        "a retried batch gets its original offset"
    );
    let gap = produce(&mut c, "idem", 0, seq_batch(9, 1), -1);
    assert_eq!(gap.error_code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    let next = produce(&mut c, "idem", 0, seq_batch(5, 1), -1);
    assert_eq!((next.error_code, next.base_offset), (0, 5));

    // The state survives a restart (rebuilt from the log).
    rt.block_on(b.shutdown()).unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    let retry = produce(&mut c, "idem", 0, seq_batch(5, 1), -1);
    assert_eq!((retry.error_code, retry.base_offset), (0, 5));
    let next = produce(&mut c, "idem", 0, seq_batch(6, 1), -1);
    assert_eq!((next.error_code, next.base_offset), (0, 6));
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "p", 1), 0);
    let mut frames = Vec::new();
    let first_correlation = c.correlation + 1;
    for i in 0..20 {
        let acks = if i % 2 == 0 { -1 } else { 1 };
        let req = produce_request("p", 0, batch(1, format!("{i}").as_bytes()), acks);
        frames.extend(c.frame(ApiKey::Produce, 9, &req));
        frames.extend(c.frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()));
    }
    c.send_raw(&frames);
    let mut produced = 0;
    for n in 0..40 {
        let mut resp = c.read_frame().unwrap();
        let correlation = resp.get_i32();
        assert_eq!(
            correlation,
            first_correlation + n,
            "responses come back in request order"
        );
        if n % 2 == 0 {
            resp.advance(1); // produce v9's response header is flexible: its tagged fields
            let r = ProduceResponse::decode(&mut resp, 9).unwrap();
            assert_eq!(r.responses[0].partition_responses[0].base_offset, produced);
            produced += 1;
        }
    }
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn a_metadata_response_of_many_partitions_is_encoded_off_the_workers_exactly_as_the_crate_does() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    let partitions = strom_broker::limits::METADATA_OFF_WORKER_PARTITIONS as i32 + 200;
    assert_eq!(create_topic(&mut c, "wide", partitions), 0);
    for version in [1, 9, 12] {
        // All topics, then the one by name, each followed by a small request: answered in
        // order, the large one as the crate would encode it.
        let mut all = MetadataRequest::default();
        all.topics = None;
        let mut named = MetadataRequest::default();
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(topic_name("wide"));
        named.topics = Some(vec![t]);
        for req in [all, named] {
            let correlation = c.correlation + 1;
            let mut frames = c.frame(ApiKey::Metadata, version, &req);
            frames.extend(c.frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()));
            c.send_raw(&frames);
            let mut resp = c.read_frame().unwrap();
            assert_eq!(resp.get_i32(), correlation);
            if version >= 9 {
                resp.advance(1); // the flexible header's tagged fields
            }
            let body = resp.clone();
            let r = MetadataResponse::decode(&mut resp, version).unwrap();
            assert!(
                !resp.has_remaining(),
                "v{version}: nothing after the response"
            );
            let wide = r
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "wide"));
            let wide = wide.expect("the wide topic");
            assert_eq!(wide.partitions.len(), partitions as usize);
            assert!(wide
                .partitions
                .iter()
                .all(|p| p.leader_id.0 == b.broker.node_id));
            let mut again = BytesMut::new();
            kafka_protocol::protocol::Encodable::encode(&r, &mut again, version).unwrap();
            assert_eq!(
                &again[..],
                &body[..],
                "v{version}: byte for byte the crate's encoding"
            );
            let mut next = c.read_frame().unwrap();
            assert_eq!(
                next.get_i32(),
                correlation + 1,
                "the small request comes after"
            );
        }
    }
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn fetch_long_poll_wakes_on_new_data() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let addr = b.addr();
    let mut c = Conn::open(addr);
    assert_eq!(create_topic(&mut c, "lp", 1), 0);
    let mut fp = fetch_request::FetchPartition::default();
    fp.fetch_offset = 0;
    fp.partition_max_bytes = 1 << 20;
    let mut ft = fetch_request::FetchTopic::default();
    ft.topic = topic_name("lp");
    ft.partitions.push(fp);
    let mut req = FetchRequest::default();
    req.max_wait_ms = 10_000;
    req.min_bytes = 1;
    req.max_bytes = 1 << 20;
    req.topics.push(ft);
    let f = c.frame(ApiKey::Fetch, 12, &req);
    let started = std::time::Instant::now();
    c.send_raw(&f);
    std::thread::sleep(Duration::from_millis(300));
    let mut p = Conn::open(addr);
    let sent = batch(2, b"wake");
    assert_eq!(produce(&mut p, "lp", 0, sent.clone(), 1).error_code, 0);
    let mut resp = c.read_frame().unwrap();
    let waited = started.elapsed();
    ResponseHeader::decode(&mut resp, ApiKey::Fetch.response_header_version(12)).unwrap();
    let r = FetchResponse::decode(&mut resp, 12).unwrap();
    let pd = &r.responses[0].partitions[0];
    assert_eq!(pd.high_watermark, 2);
    let mut stored = sent.to_vec();
    strom_proto::batch::set_base_offset(&mut stored, 0);
    // The leader writes its epoch into the batch, as Kafka's does.
    strom_proto::batch::set_partition_leader_epoch(&mut stored, 0);
    assert_eq!(
        pd.records.as_ref().unwrap().to_vec(),
        stored,
        "the batch, byte for byte"
    );
    assert!(
        waited < Duration::from_secs(5),
        "woken by the append, not the 10 s timeout: {waited:?}"
    );
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn kafkas_own_server_properties_start_the_broker() {
    for fixture in ["kafka-server.properties", "kafka-zk-server.properties"] {
        let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        let mut props = strom_broker::parse_properties(&text).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        props.insert(
            "log.dirs".into(),
            tmp.path().join("data").display().to_string(),
        );
        // Ephemeral ports; the controller listener stays where the file has one.
        let listeners = if props.contains_key("controller.listener.names") {
            "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0"
        } else {
            "PLAINTEXT://127.0.0.1:0"
        };
        props.insert("listeners".into(), listeners.into());
        props.insert("strom.http.listener".into(), "http://127.0.0.1:0".into());
        props.remove("advertised.listeners");
        let (config, ignored) =
            BrokerConfig::from_properties(&props).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        assert!(
            !ignored.is_empty(),
            "{fixture}: keys Strom has no use for are reported"
        );
        let rt = runtime();
        let b = rt.block_on(Broker::start(config)).unwrap();
        api_versions_ok(b.addr());
        rt.block_on(b.shutdown()).unwrap();
    }
}

#[test]
fn a_restart_restores_topics_configs_and_records() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "keep", 2), 0);
    let mut req = IncrementalAlterConfigsRequest::default();
    let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = StrBytes::from_static_str("keep");
    let mut cfg = incremental_alter_configs_request::AlterableConfig::default();
    cfg.name = StrBytes::from_static_str("retention.ms");
    cfg.value = Some(StrBytes::from_static_str("12345"));
    res.configs.push(cfg);
    req.resources.push(res);
    let r: IncrementalAlterConfigsResponse = c.call(ApiKey::IncrementalAlterConfigs, 1, &req);
    assert_eq!(r.responses[0].error_code, 0);
    for i in 0..10 {
        assert_eq!(
            produce(&mut c, "keep", i % 2, batch(1, b"x"), -1).error_code,
            0
        );
    }
    rt.block_on(b.shutdown()).unwrap();
    assert!(tmp.path().join("data/.clean-shutdown").exists());

    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    let mut all = MetadataRequest::default();
    all.topics = None;
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &all);
    let t = r
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("keep"))
        .unwrap();
    assert_eq!(t.partitions.len(), 2);
    assert!(!r.topics.iter().any(|t| t
        .name
        .as_ref()
        .is_some_and(|n| n.0.as_str().starts_with("__cluster"))));
    assert_eq!(
        topic_config(&mut c, "keep", "retention.ms").as_deref(),
        Some("12345")
    );
    assert_eq!(
        produce(&mut c, "keep", 0, batch(1, b"x"), -1).base_offset,
        5
    );
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn incremental_fetch_sessions_send_only_partitions_with_news() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "s", 2), 0);
    assert_eq!(produce(&mut c, "s", 0, batch(2, b"a"), 1).error_code, 0);
    let fetch =
        |c: &mut Conn, session_id: i32, epoch: i32, partitions: &[(i32, i64)]| -> FetchResponse {
            let mut req = FetchRequest::default();
            req.max_wait_ms = 0;
            req.max_bytes = 1 << 20;
            req.session_id = session_id;
            req.session_epoch = epoch;
            if !partitions.is_empty() {
                let mut ft = fetch_request::FetchTopic::default();
                ft.topic = topic_name("s");
                for (p, offset) in partitions {
                    let mut fp = fetch_request::FetchPartition::default();
                    fp.partition = *p;
                    fp.fetch_offset = *offset;
                    fp.partition_max_bytes = 1 << 20;
                    ft.partitions.push(fp);
                }
                req.topics.push(ft);
            }
            c.call(ApiKey::Fetch, 12, &req)
        };
    // Epoch 0 opens a session and answers every partition.
    let full = fetch(&mut c, 0, 0, &[(0, 0), (1, 0)]);
    assert_ne!(full.session_id, 0);
    assert_eq!(full.responses[0].partitions.len(), 2);
    let id = full.session_id;
    // Nothing new: the incremental answer is empty, though the request names nothing.
    let quiet = fetch(&mut c, id, 1, &[(0, 2)]);
    assert_eq!(quiet.error_code, 0);
    assert!(
        quiet.responses.iter().all(|t| t.partitions.is_empty()),
        "{quiet:?}"
    );
    // New data on partition 1 (remembered at offset 0): only it comes back.
    assert_eq!(produce(&mut c, "s", 1, batch(3, b"b"), 1).error_code, 0);
    let news = fetch(&mut c, id, 2, &[]);
    assert_eq!(news.responses.len(), 1);
    assert_eq!(news.responses[0].partitions.len(), 1);
    assert_eq!(news.responses[0].partitions[0].partition_index, 1);
    assert_eq!(news.responses[0].partitions[0].high_watermark, 3);
    // Wrong epoch, unknown session.
    assert_eq!(
        fetch(&mut c, id, 9, &[]).error_code,
        71,
        "INVALID_FETCH_SESSION_EPOCH"
    );
    assert_eq!(
        fetch(&mut c, 12345, 1, &[]).error_code,
        70,
        "FETCH_SESSION_ID_NOT_FOUND"
    );
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn offsets_committed_outside_a_group_are_fetched_and_deleted() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    assert_eq!(create_topic(&mut c, "o", 2), 0);
    let group = GroupId(StrBytes::from_static_str("standalone"));
    let mut req = OffsetCommitRequest::default();
    req.group_id = group.clone();
    req.generation_id_or_member_epoch = -1;
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = topic_name("o");
    for (p, off) in [(0, 7i64), (1, 9)] {
        let mut pp = offset_commit_request::OffsetCommitRequestPartition::default();
        pp.partition_index = p;
        pp.committed_offset = off;
        t.partitions.push(pp);
    }
    req.topics.push(t);
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req);
    assert!(r.topics[0].partitions.iter().all(|p| p.error_code == 0));
    let fetch = |c: &mut Conn| -> Vec<i64> {
        let mut f = OffsetFetchRequest::default();
        f.group_id = group.clone();
        let mut ft = offset_fetch_request::OffsetFetchRequestTopic::default();
        ft.name = topic_name("o");
        ft.partition_indexes = vec![0, 1];
        f.topics = Some(vec![ft]);
        let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &f);
        r.topics[0]
            .partitions
            .iter()
            .map(|p| p.committed_offset)
            .collect()
    };
    assert_eq!(fetch(&mut c), vec![7, 9]);
    let mut del = OffsetDeleteRequest::default();
    del.group_id = group.clone();
    let mut dt = offset_delete_request::OffsetDeleteRequestTopic::default();
    dt.name = topic_name("o");
    let mut dp = offset_delete_request::OffsetDeleteRequestPartition::default();
    dp.partition_index = 0;
    dt.partitions.push(dp);
    del.topics.push(dt);
    let r: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &del);
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    assert_eq!(fetch(&mut c), vec![-1, 9]);
    // They survive a restart.
    rt.block_on(b.shutdown()).unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    assert_eq!(fetch(&mut c), vec![-1, 9]);
    let mut unknown = del.clone();
    unknown.group_id = GroupId(StrBytes::from_static_str("nobody"));
    let r: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &unknown);
    assert_eq!(r.error_code, 69, "GROUP_ID_NOT_FOUND");
    rt.block_on(b.shutdown()).unwrap();
}

#[test]
fn compacted_topics_refuse_records_without_keys_and_ops_are_reported() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[]);
    let mut c = Conn::open(b.addr());
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = topic_name("compacted");
    t.num_partitions = 1;
    t.replication_factor = 1;
    let mut cfg = create_topics_request::CreatableTopicConfig::default();
    cfg.name = StrBytes::from_static_str("cleanup.policy");
    cfg.value = Some(StrBytes::from_static_str("compact"));
    t.configs.push(cfg);
    let mut req = CreateTopicsRequest::default();
    req.topics.push(t);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(r.topics[0].error_code, 0);
    let mut keyless = BatchBuilder::new(0);
    keyless.push(Some(b"k"), Some(b"v"), 0);
    keyless.push(None, Some(b"v"), 0);
    let r = produce(&mut c, "compacted", 0, Bytes::from(keyless.build()), -1);
    assert_eq!(r.error_code, 87, "INVALID_RECORD");
    assert_eq!(r.record_errors[0].batch_index, 1);
    assert_eq!(
        produce(&mut c, "compacted", 0, batch(2, b"v"), -1).base_offset,
        0
    );

    let mut m = MetadataRequest::default();
    m.topics = None;
    m.include_topic_authorized_operations = true;
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &m);
    assert_eq!(r.topics[0].topic_authorized_operations, 0xDF8);
    let mut d = DescribeClusterRequest::default();
    d.include_cluster_authorized_operations = true;
    d.endpoint_type = 1;
    let r: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, 1, &d);
    assert_eq!(r.cluster_authorized_operations, 0x1FA0);
    // Controllers are asked at a controller listener (KIP-919), not here.
    d.endpoint_type = 2;
    let r: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, 1, &d);
    assert_eq!((r.error_code, r.endpoint_type), (114, 1));
    rt.block_on(b.shutdown()).unwrap();
}

/// Every record of `topic`-0 from offset 0, as (offset, key, value), fetched over the wire.
#[test]
fn compacted_topics_are_cleaned_in_the_background() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let b = start(&rt, tmp.path(), &[("log.cleaner.backoff.ms", "20")]);
    let mut c = Conn::open(b.addr());
    compacted_table(&mut c, "table");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !cleaned(&mut c, "table") {
        assert!(std::time::Instant::now() < deadline, "not cleaned in 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The high watermark and the next offset did not move.
    assert_eq!(
        produce(&mut c, "table", 0, batch(1, b"after"), -1).base_offset,
        201
    );
    rt.block_on(b.shutdown()).unwrap();
}
