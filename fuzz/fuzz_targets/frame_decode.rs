//! Fuzzes request decoding: any bytes as a request frame body must decode to a request or an
//! error (the broker then closes the connection), never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = strom_broker::server::decode(bytes::Bytes::copy_from_slice(data));
});
