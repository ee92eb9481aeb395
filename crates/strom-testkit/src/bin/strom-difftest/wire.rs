//! ApiVersions (API ranges and features) and frames no client should send.

use crate::kit::Obs;
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use strom_testkit::Conn;

pub fn api_versions(o: &mut Obs, c: &mut Conn) {
    for version in [3, 4] {
        let mut req = ApiVersionsRequest::default();
        req.client_software_name =
            kafka_protocol::protocol::StrBytes::from_static_str("strom-difftest");
        req.client_software_version = kafka_protocol::protocol::StrBytes::from_static_str("1.0");
        let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, version, &req);
        o.see(format!("v{version} error={}", r.error_code));
        if version == 3 {
            for k in &r.api_keys {
                let name = ApiKey::try_from(k.api_key)
                    .map(|k| format!("{k:?}"))
                    .unwrap_or_else(|_| k.api_key.to_string());
                o.see(format!("api {name} {}-{}", k.min_version, k.max_version));
            }
        }
        for f in &r.supported_features {
            o.see(format!(
                "v{version} supported {} {}-{}",
                f.name.as_str(),
                f.min_version,
                f.max_version
            ));
        }
        for f in &r.finalized_features {
            o.see(format!(
                "v{version} finalized {} {}",
                f.name.as_str(),
                f.max_version_level
            ));
        }
    }
}

/// A raw frame: size, API key, version, correlation id, client id "raw", then `body`.
fn raw(key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(key);
    b.put_i16(version);
    b.put_i32(7);
    b.put_i16(3);
    b.put_slice(b"raw");
    b.put_slice(body);
    let mut out = (b.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&b);
    out
}

/// What the broker does with one raw frame on a fresh connection.
fn answer(addr: &std::net::SocketAddr, frame: &[u8]) -> String {
    let mut c = Conn::open(addr);
    c.send_raw(frame);
    match c.read_frame() {
        None => "closed".into(),
        Some(b) => format!("answered {} bytes", b.len()),
    }
}

pub fn raw_frames(o: &mut Obs, c: &mut Conn) {
    let addr = c.stream.peer_addr().expect("peer address");
    // ApiVersions at a version no broker knows: UNSUPPORTED_VERSION in the v0 layout, with
    // the versions it does know.
    let mut conn = Conn::open(addr);
    conn.send_raw(&raw(ApiKey::ApiVersions as i16, 99, &[]));
    match conn.read_frame() {
        None => o.see("ApiVersions v99: closed"),
        Some(mut b) => {
            let correlation = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let _ = bytes::Buf::get_i32(&mut b);
            let r = ApiVersionsResponse::decode(&mut b, 0);
            match r {
                Ok(r) => o.see(format!(
                    "ApiVersions v99: correlation={correlation} error={} lists ApiVersions={}",
                    r.error_code,
                    r.api_keys
                        .iter()
                        .any(|k| k.api_key == ApiKey::ApiVersions as i16)
                )),
                Err(e) => o.see(format!("ApiVersions v99: undecodable v0 body: {e}")),
            }
        }
    }
    o.see(format!(
        "unknown API key 999: {}",
        answer(&addr, &raw(999, 0, &[]))
    ));
    o.see(format!(
        "Metadata v99: {}",
        answer(&addr, &raw(ApiKey::Metadata as i16, 99, &[]))
    ));
    o.see(format!(
        "Metadata v1 truncated body: {}",
        answer(&addr, &raw(ApiKey::Metadata as i16, 1, &[0, 0]))
    ));
    o.see(format!(
        "Metadata v1 array count 2^31-1: {}",
        answer(
            &addr,
            &raw(ApiKey::Metadata as i16, 1, &[0x7f, 0xff, 0xff, 0xff])
        )
    ));
    o.see(format!(
        "negative frame size: {}",
        answer(&addr, &(-5i32).to_be_bytes())
    ));
    // The first connection still works after all that.
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    o.see(format!("still serving: error={}", r.error_code));
}
