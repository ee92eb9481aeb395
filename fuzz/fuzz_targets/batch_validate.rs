//! Fuzzes record-batch validation and record decoding: any bytes must be accepted as valid
//! batches or refused with an error, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(batches) = strom_proto::batch::split(data) {
        for (_, b) in batches {
            let _ = strom_proto::records::decode(b);
        }
    }
    let _ = strom_proto::batch::validate(data);
    let _ = strom_proto::records::decode(data);
});
