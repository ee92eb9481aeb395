//! Produce, Fetch, ListOffsets and DeleteRecords: offsets, watermarks, timestamps and the
//! errors for bad records and bad positions.

use crate::kit::{self, batch, list_offset, name, now_ms, produce_line, ts, Obs};
use bytes::Bytes;
use kafka_protocol::messages::*;
use strom_proto::BatchBuilder;
use strom_testkit::Conn;

pub fn produce(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 2, &[]);
    let t0 = now_ms();
    o.see(format!(
        "acks=1: {}",
        produce_line(c, &t, 0, batch(3, t0), 1)
    ));
    o.see(format!(
        "acks=-1: {}",
        produce_line(c, &t, 0, batch(2, t0), -1)
    ));
    o.see(format!(
        "partition 1: {}",
        produce_line(c, &t, 1, batch(1, t0), -1)
    ));
    o.see(format!(
        "acks=2: {}",
        produce_line(c, &t, 0, batch(1, t0), 2)
    ));
    o.see(format!(
        "acks=-2: {}",
        produce_line(c, &t, 0, batch(1, t0), -2)
    ));
    o.see(format!(
        "unknown partition: {}",
        produce_line(c, &t, 7, batch(1, t0), 1)
    ));
    o.see(format!(
        "unknown topic: {}",
        produce_line(c, "no-such-topic", 0, batch(1, t0), 1)
    ));
    o.see(format!(
        "invalid topic name: {}",
        produce_line(c, "bad/name", 0, batch(1, t0), 1)
    ));
    o.see(format!(
        "internal topic __consumer_offsets: {}",
        produce_line(c, "__consumer_offsets", 0, batch(1, t0), 1)
    ));
    // acks=0: no answer; the next request is answered in order.
    let f = c.frame(
        ApiKey::Produce,
        11,
        &kit::produce_req(&t, 0, batch(1, t0), 0),
    );
    c.send_raw(&f);
    o.see(format!(
        "after acks=0: {}",
        produce_line(c, &t, 0, batch(1, t0), 1)
    ));
}

pub fn produce_bad(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 1, &[("max.message.bytes", "2000")]);
    let t0 = now_ms();
    // CRC damaged: the last byte of the records.
    let mut b = batch(2, t0).to_vec();
    let last = b.len() - 1;
    b[last] ^= 0xff;
    o.see(format!(
        "bad crc: {}",
        produce_line(c, &t, 0, Bytes::from(b), 1)
    ));
    // Magic 1 (a v1 message set): Kafka 4 refuses old formats.
    let mut b = batch(1, t0).to_vec();
    b[16] = 1;
    o.see(format!(
        "magic 1: {}",
        produce_line(c, &t, 0, Bytes::from(b), 1)
    ));
    // Truncated batch.
    let b = batch(3, t0);
    o.see(format!(
        "truncated: {}",
        produce_line(c, &t, 0, b.slice(..b.len() - 5), 1)
    ));
    // Larger than max.message.bytes.
    let mut big = BatchBuilder::new(t0);
    big.push(Some(b"k"), Some(&vec![b'x'; 5000]), t0);
    o.see(format!(
        "too large: {}",
        produce_line(c, &t, 0, Bytes::from(big.build()), 1)
    ));
    // No records at all, and an empty records field.
    o.see(format!(
        "empty records: {}",
        produce_line(c, &t, 0, Bytes::new(), 1)
    ));
    // Timestamps far in the past and future (CreateTime topic).
    o.see(format!(
        "timestamp 2 days ahead: {}",
        produce_line(c, &t, 0, batch(1, t0 + 2 * 86_400_000), 1)
    ));
    o.see(format!(
        "timestamp 1990: {}",
        produce_line(c, &t, 0, batch(1, 631_152_000_000), 1)
    ));
    // The log is still fine: the next good batch lands at the next offset.
    o.see(format!(
        "good after bad: {}",
        produce_line(c, &t, 0, batch(1, t0), 1)
    ));
}

fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    let mut b = BatchBuilder::new(now_ms()).producer(pid, epoch, seq);
    for i in 0..n {
        b.push(Some(b"k"), Some(format!("v{i}").as_bytes()), now_ms());
    }
    Bytes::from(b.build())
}

pub fn idempotence(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 1, &[]);
    let mut req = InitProducerIdRequest::default();
    req.transaction_timeout_ms = 60_000;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &req);
    o.see(format!(
        "init: error={} epoch={} pid>=0={}",
        r.error_code,
        r.producer_epoch,
        r.producer_id.0 >= 0
    ));
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    o.see(format!(
        "seq 0: {}",
        produce_line(c, &t, 0, idempotent_batch(pid, epoch, 0, 2), -1)
    ));
    o.see(format!(
        "seq 2: {}",
        produce_line(c, &t, 0, idempotent_batch(pid, epoch, 2, 1), -1)
    ));
    o.see(format!(
        "duplicate seq 0: {}",
        produce_line(c, &t, 0, idempotent_batch(pid, epoch, 0, 2), -1)
    ));
    o.see(format!(
        "duplicate seq 2: {}",
        produce_line(c, &t, 0, idempotent_batch(pid, epoch, 2, 1), -1)
    ));
    o.see(format!(
        "gap seq 5: {}",
        produce_line(c, &t, 0, idempotent_batch(pid, epoch, 5, 1), -1)
    ));
    o.see(format!(
        "old epoch: {}",
        produce_line(c, &t, 0, idempotent_batch(pid, epoch - 1, 3, 1), -1)
    ));
    o.see(format!(
        "unknown pid seq 7: {}",
        produce_line(c, &t, 0, idempotent_batch(pid + 1000, 0, 7, 1), -1)
    ));
    o.see(format!(
        "next seq 3: {}",
        produce_line(c, &t, 0, idempotent_batch(pid, epoch, 3, 1), -1)
    ));
    // A transactional id without transactions support on either side is its own scenario
    // (issue 12); here, the idempotent producer only.
}

fn fetch_req(topic: &str, partition: i32, offset: i64, max_bytes: i32) -> FetchRequest {
    let mut fp = fetch_request::FetchPartition::default();
    fp.partition = partition;
    fp.fetch_offset = offset;
    fp.partition_max_bytes = max_bytes;
    fp.current_leader_epoch = -1;
    fp.log_start_offset = -1;
    let mut ft = fetch_request::FetchTopic::default();
    ft.topic = name(topic);
    ft.partitions.push(fp);
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = 100;
    req.min_bytes = 1;
    req.max_bytes = 52_428_800;
    req.session_epoch = -1;
    req.topics.push(ft);
    req
}

fn see_fetch(o: &mut Obs, label: &str, c: &mut Conn, req: &FetchRequest) {
    let r: Result<FetchResponse, String> = c.try_call(ApiKey::Fetch, 12, req);
    let r = match r {
        Ok(r) => r,
        Err(e) => return o.see(format!("{label}: {e}")),
    };
    o.see(format!(
        "{label}: top error={} session={}",
        r.error_code, r.session_id
    ));
    for t in &r.responses {
        for p in &t.partitions {
            let bytes = p.records.as_ref().map_or(0, |b| b.len());
            let batches = p.records.as_ref().map_or(0, count_batches);
            o.see(format!(
                "{label} p{}: error={} hw={} lso={} log_start={} batches={batches} has_bytes={}",
                p.partition_index,
                p.error_code,
                p.high_watermark,
                p.last_stable_offset,
                p.log_start_offset,
                bytes > 0
            ));
        }
    }
}

/// Whole v2 batches in a records field (a trailing partial batch is not counted).
fn count_batches(b: &Bytes) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while pos + 12 <= b.len() {
        let len = i32::from_be_bytes([b[pos + 8], b[pos + 9], b[pos + 10], b[pos + 11]]) as usize;
        if pos + 12 + len > b.len() {
            break;
        }
        n += 1;
        pos += 12 + len;
    }
    n
}

pub fn fetch(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 1, &[]);
    let t0 = now_ms();
    for _ in 0..3 {
        produce_line(c, &t, 0, batch(2, t0), -1);
    }
    see_fetch(o, "from 0", c, &fetch_req(&t, 0, 0, 1_048_576));
    see_fetch(o, "from 2", c, &fetch_req(&t, 0, 2, 1_048_576));
    see_fetch(
        o,
        "from 3 (inside a batch)",
        c,
        &fetch_req(&t, 0, 3, 1_048_576),
    );
    see_fetch(o, "at end", c, &fetch_req(&t, 0, 6, 1_048_576));
    see_fetch(o, "past end", c, &fetch_req(&t, 0, 7, 1_048_576));
    see_fetch(o, "negative offset", c, &fetch_req(&t, 0, -5, 1_048_576));
    see_fetch(o, "partition max 1 byte", c, &fetch_req(&t, 0, 0, 1));
    let mut small = fetch_req(&t, 0, 0, 1_048_576);
    small.max_bytes = 1;
    see_fetch(o, "response max 1 byte", c, &small);
    see_fetch(o, "unknown partition", c, &fetch_req(&t, 5, 0, 1_048_576));
    see_fetch(
        o,
        "unknown topic",
        c,
        &fetch_req("no-such-topic", 0, 0, 1_048_576),
    );
    // An unknown topic id at a topic-id version.
    let mut by_id = fetch_req(&t, 0, 0, 1_048_576);
    by_id.topics[0].topic_id = uuid::Uuid::from_u128(7);
    let r: Result<FetchResponse, String> = c.try_call(ApiKey::Fetch, 13, &by_id);
    match r {
        Ok(r) => o.see(format!(
            "unknown topic id (v13): top error={} partition errors={:?}",
            r.error_code,
            r.responses
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect::<Vec<_>>()
        )),
        Err(e) => o.see(format!("unknown topic id (v13): {e}")),
    }
    // A long poll at the end times out with nothing.
    let mut wait = fetch_req(&t, 0, 6, 1_048_576);
    wait.max_wait_ms = 300;
    see_fetch(o, "long poll at end", c, &wait);
}

pub fn list_offsets(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 1, &[]);
    o.see(format!("empty latest: {}", list_offset(c, &t, 0, -1, 9)));
    o.see(format!("empty earliest: {}", list_offset(c, &t, 0, -2, 9)));
    o.see(format!(
        "empty max timestamp: {}",
        list_offset(c, &t, 0, -3, 9)
    ));
    let base = 1_700_000_000_000;
    produce_line(c, &t, 0, batch(3, base), -1);
    produce_line(c, &t, 0, batch(3, base + 100), -1);
    for (label, ts) in [
        ("latest", -1),
        ("earliest", -2),
        ("max timestamp", -3),
        ("earliest local", -4),
        ("latest tiered", -5),
        ("by time before all", base - 1),
        ("by time exact 2nd", base + 1),
        ("by time between batches", base + 50),
        ("by time 2nd batch", base + 101),
        ("by time after all", base + 1000),
        ("unknown special -9", -9),
    ] {
        o.see(format!("{label}: {}", list_offset(c, &t, 0, ts, 9)));
    }
    o.see(format!("v1 latest: {}", list_offset(c, &t, 0, -1, 1)));
    o.see(format!(
        "unknown partition: {}",
        list_offset(c, &t, 3, -1, 9)
    ));
    o.see(format!(
        "unknown topic: {}",
        list_offset(c, "no-such-topic", 0, -1, 9)
    ));
}

pub fn log_append_time(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 1, &[("message.timestamp.type", "LogAppendTime")]);
    let before = now_ms();
    let line = produce_line(c, &t, 0, batch(2, 1_000), -1);
    o.see(format!("produce: {line}"));
    let r = list_offset(c, &t, 0, -3, 9);
    o.see(format!("max timestamp: {}", mask_timestamp(&r, before)));
    let r = list_offset(c, &t, 0, before, 9);
    o.see(format!("by time: {}", mask_timestamp(&r, before)));
}

/// A list-offsets line with its timestamp replaced by whether it is recent.
fn mask_timestamp(line: &str, since: i64) -> String {
    line.split(' ')
        .map(|f| match f.strip_prefix("timestamp=") {
            Some(v) => {
                let v: i64 = v.parse().unwrap_or(-1);
                format!(
                    "timestamp={}",
                    if v >= since { "recent".into() } else { ts(v) }
                )
            }
            None => f.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn delete_records(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 2, &[]);
    produce_line(c, &t, 0, batch(5, now_ms()), -1);
    let del = |c: &mut Conn, partition: i32, offset: i64| -> String {
        let mut p = delete_records_request::DeleteRecordsPartition::default();
        p.partition_index = partition;
        p.offset = offset;
        let mut dt = delete_records_request::DeleteRecordsTopic::default();
        dt.name = name(&t);
        dt.partitions.push(p);
        let mut req = DeleteRecordsRequest::default();
        req.topics.push(dt);
        req.timeout_ms = 15_000;
        let r: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &req);
        let p = &r.topics[0].partitions[0];
        format!("error={} low_watermark={}", p.error_code, p.low_watermark)
    };
    o.see(format!("to 2: {}", del(c, 0, 2)));
    o.see(format!("to 1 (behind): {}", del(c, 0, 1)));
    o.see(format!("to end (-1): {}", del(c, 0, -1)));
    o.see(format!("past end: {}", del(c, 0, 9)));
    o.see(format!("-7: {}", del(c, 0, -7)));
    o.see(format!("unknown partition: {}", del(c, 5, 0)));
    o.see(format!("earliest now: {}", list_offset(c, &t, 0, -2, 9)));
    see_fetch(o, "fetch deleted", c, &fetch_req(&t, 0, 0, 1_048_576));
}

/// A fetch in a session: its top-level error, whether it has a session, and the partitions
/// in the answer with their error and whether records came.
fn session_fetch(c: &mut Conn, req: &FetchRequest) -> (String, i32) {
    let r: Result<FetchResponse, String> = c.try_call(ApiKey::Fetch, 12, req);
    match r {
        Err(e) => (e, 0),
        Ok(r) => {
            let parts: Vec<String> = r
                .responses
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| {
                        let n = p.records.as_ref().map_or(0, count_batches);
                        format!("p{}:{}:{n}", p.partition_index, p.error_code)
                    })
                })
                .collect();
            let line = format!(
                "error={} session={} partitions={parts:?}",
                r.error_code,
                if r.session_id == 0 { "none" } else { "set" }
            );
            (line, r.session_id)
        }
    }
}

pub fn fetch_sessions(o: &mut Obs, c: &mut Conn) {
    let t = o.topic("t");
    kit::topic(c, &t, 2, &[]);
    produce_line(c, &t, 0, batch(2, now_ms()), -1);
    let mut req = fetch_req(&t, 0, 0, 1_048_576);
    let mut p1 = req.topics[0].partitions[0].clone();
    p1.partition = 1;
    req.topics[0].partitions.push(p1);
    req.session_id = 0;
    req.session_epoch = 0;
    let (line, session) = session_fetch(c, &req);
    o.see(format!("open: {line}"));
    // Nothing new: an incremental fetch names no partition; the answer has none.
    let mut inc = FetchRequest::default();
    inc.replica_id = BrokerId(-1);
    inc.max_wait_ms = 100;
    inc.min_bytes = 1;
    inc.max_bytes = 52_428_800;
    inc.session_id = session;
    inc.session_epoch = 1;
    let (line, _) = session_fetch(c, &inc);
    o.see(format!("epoch 1, nothing new: {line}"));
    // The session's position for partition 0 moved to 2 with the records served; new
    // records there come in the next incremental fetch.
    produce_line(c, &t, 0, batch(1, now_ms()), -1);
    inc.session_epoch = 2;
    let (line, _) = session_fetch(c, &inc);
    o.see(format!("epoch 2, after a produce: {line}"));
    inc.session_epoch = 7;
    let (line, _) = session_fetch(c, &inc);
    o.see(format!("wrong epoch: {line}"));
    inc.session_id = session.wrapping_add(12345);
    inc.session_epoch = 3;
    let (line, _) = session_fetch(c, &inc);
    o.see(format!("unknown session: {line}"));
    // Closing it (epoch -1) and a sessionless full fetch.
    inc.session_id = session;
    inc.session_epoch = -1;
    let (line, _) = session_fetch(c, &inc);
    o.see(format!("close: {line}"));
}
