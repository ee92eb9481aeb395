//! A blocking connection speaking raw frames: well-formed requests through the crate's
//! codecs, or any bytes at all, and the broker's answer (or its closing the connection).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long a read waits for a response before the call fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Conn {
    pub stream: TcpStream,
    pub correlation: i32,
}

impl Conn {
    /// Connects; panics if it cannot (for tests).
    pub fn open(addr: impl ToSocketAddrs) -> Conn {
        Conn::connect(addr).expect("connecting to the broker")
    }

    pub fn connect(addr: impl ToSocketAddrs) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            correlation: 0,
        })
    }

    /// A request frame (size prefix, header, body) with the next correlation id.
    pub fn frame<R: Encodable>(&mut self, key: ApiKey, version: i16, body: &R) -> Vec<u8> {
        self.correlation += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation;
        header.client_id = Some(StrBytes::from_static_str("wire-test"));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .expect("encoding a request header");
        body.encode(&mut buf, version)
            .expect("a field is set that this version does not have");
        let mut out = (buf.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&buf);
        out
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        // A broker that closed the connection shows up on the next read.
        let _ = self.stream.write_all(bytes);
    }

    /// Reads one response frame; None when the broker closed the connection (or went
    /// silent past `READ_TIMEOUT`).
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let size = i32::from_be_bytes(size);
        let mut body = vec![0u8; usize::try_from(size).ok()?];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// One request and its response; `Err` says why there is none (the connection closed,
    /// a bad correlation id, an undecodable body).
    pub fn try_call<R: Encodable, S: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &R,
    ) -> Result<S, String> {
        let f = self.frame(key, version, body);
        self.send_raw(&f);
        self.try_read_response(key, version)
    }

    /// Reads the response to the last request framed (one sent with `frame` + `send_raw`).
    pub fn try_read_response<S: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
    ) -> Result<S, String> {
        let mut resp = self.read_frame().ok_or("connection closed")?;
        let header = ResponseHeader::decode(&mut resp, key.response_header_version(version))
            .map_err(|e| format!("bad response header: {e}"))?;
        if header.correlation_id != self.correlation {
            return Err(format!(
                "correlation id {} answered for {}",
                header.correlation_id, self.correlation
            ));
        }
        S::decode(&mut resp, version).map_err(|e| format!("undecodable {key:?} v{version}: {e}"))
    }

    /// `try_call` for tests: panics when there is no response.
    pub fn call<R: Encodable, S: Decodable>(&mut self, key: ApiKey, version: i16, body: &R) -> S {
        self.try_call(key, version, body)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"))
    }

    /// `try_read_response` for tests: panics when there is no response.
    pub fn read_response<S: Decodable>(&mut self, key: ApiKey, version: i16) -> S {
        self.try_read_response(key, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"))
    }

    /// Whether the broker has closed the connection (reads end of stream or fail).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}
