//! Compressing and decompressing the records section of a v2 batch, in the four codecs Kafka
//! uses (attributes bits 0..=2). The broker never does this on the hot path (batches are
//! stored as received); the client does it to produce and consume, the log cleaner to read
//! keys out of compressed batches.
//!
//! Codecs are pure Rust so the build needs no C compiler: flate2 (miniz_oxide) for gzip, snap
//! for snappy, lz4_flex for LZ4 frames, ruzstd for zstd (its encoder is zstd level 1 quality).
//!
//! Wire formats, as Kafka's clients write them:
//! - gzip: one gzip member (`GZIPOutputStream`).
//! - snappy: raw snappy (librdkafka) or xerial-framed (the Java client: an 8-byte magic,
//!   two version ints, then length-prefixed raw blocks). Both are read; raw is written.
//! - lz4: an LZ4 frame with independent blocks (`KafkaLZ4BlockOutputStream`).
//! - zstd: one or more zstd frames.

use crate::batch::Compression;
use std::io::{Read, Write};

/// Why a compressed records section could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    #[error("corrupt {codec:?} data: {reason}")]
    Corrupt { codec: Compression, reason: String },
    #[error("{codec:?} data decompresses to more than {max_bytes} bytes")]
    TooLarge {
        codec: Compression,
        max_bytes: usize,
    },
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";

/// Compresses `data` with `codec` (`Compression::None` copies it).
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let corrupt = |e: std::io::Error| CompressionError::Corrupt {
        codec,
        reason: e.to_string(),
    };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2),
                flate2::Compression::fast(),
            );
            enc.write_all(data).map_err(corrupt)?;
            enc.finish().map_err(corrupt)
        }
        Compression::Snappy => {
            snap::raw::Encoder::new()
                .compress_vec(data)
                .map_err(|e| CompressionError::Corrupt {
                    codec,
                    reason: e.to_string(),
                })
        }
        Compression::Lz4 => {
            let mut info = lz4_flex::frame::FrameInfo::new();
            info.block_mode = lz4_flex::frame::BlockMode::Independent;
            info.block_size = lz4_flex::frame::BlockSize::Max64KB;
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(data.len() / 2),
            );
            enc.write_all(data).map_err(corrupt)?;
            enc.finish().map_err(|e| CompressionError::Corrupt {
                codec,
                reason: e.to_string(),
            })
        }
        Compression::Zstd => Ok(ruzstd::encoding::compress_to_vec(
            data,
            ruzstd::encoding::CompressionLevel::Fastest,
        )),
    }
}

/// Decompresses `data`, refusing to produce more than `max_bytes` (the input is untrusted: a
/// few bytes of zstd can claim gigabytes).
pub fn decompress(
    codec: Compression,
    data: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, CompressionError> {
    let corrupt = |reason: String| CompressionError::Corrupt { codec, reason };
    let too_large = CompressionError::TooLarge { codec, max_bytes };
    let out = match codec {
        Compression::None => data.to_vec(),
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), max_bytes)
            .map_err(|e| corrupt(e.to_string()))?,
        Compression::Snappy => match data.strip_prefix(XERIAL_MAGIC.as_slice()) {
            Some(rest) => xerial_decompress(rest, max_bytes).map_err(corrupt)?,
            None => {
                let len = snap::raw::decompress_len(data).map_err(|e| corrupt(e.to_string()))?;
                if len > max_bytes {
                    return Err(too_large);
                }
                snap::raw::Decoder::new()
                    .decompress_vec(data)
                    .map_err(|e| corrupt(e.to_string()))?
            }
        },
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), max_bytes)
            .map_err(|e| corrupt(e.to_string()))?,
        Compression::Zstd => {
            let mut out = Vec::new();
            let mut rest = data;
            while !rest.is_empty() {
                let dec = ruzstd::decoding::StreamingDecoder::new(&mut rest)
                    .map_err(|e| corrupt(e.to_string()))?;
                let frame = read_bounded(dec, max_bytes.saturating_sub(out.len()))
                    .map_err(|e| corrupt(e.to_string()))?;
                out.extend_from_slice(&frame);
                if out.len() > max_bytes {
                    return Err(too_large);
                }
            }
            out
        }
    };
    if out.len() > max_bytes {
        return Err(too_large);
    }
    Ok(out)
}

/// Reads at most `max_bytes + 1` bytes, so the caller can tell "too large" from "fits".
fn read_bounded(reader: impl Read, max_bytes: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(max_bytes as u64 + 1).read_to_end(&mut out)?;
    Ok(out)
}

/// The Java client's snappy framing, after the magic: version and compatible version (two
/// big-endian i32s), then blocks of a big-endian u32 length and that many raw-snappy bytes.
fn xerial_decompress(data: &[u8], max_bytes: usize) -> Result<Vec<u8>, String> {
    let mut rest = data.get(8..).ok_or("xerial header truncated")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("xerial block length truncated")?;
        let len = u32::from_be_bytes(*len) as usize;
        let (block, tail) = tail.split_at_checked(len).ok_or("xerial block truncated")?;
        let n = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
        if out.len() + n > max_bytes {
            return Err(format!("decompresses to more than {max_bytes} bytes"));
        }
        let start = out.len();
        out.resize(start + n, 0);
        snap::raw::Decoder::new()
            .decompress(block, out.get_mut(start..).unwrap_or_default())
            .map_err(|e| e.to_string())?;
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in ALL {
            let packed = compress(codec, &data).unwrap();
            if codec != Compression::None {
                assert!(packed.len() < data.len() / 2, "{codec:?}: {}", packed.len());
            }
            assert_eq!(
                decompress(codec, &packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
            assert!(matches!(
                decompress(codec, &packed, data.len() - 1),
                Err(CompressionError::TooLarge { .. }) | Err(CompressionError::Corrupt { .. })
            ));
        }
    }

    #[test]
    fn xerial_framed_snappy_is_read() {
        let a = snap::raw::Encoder::new().compress_vec(b"hello ").unwrap();
        let b = snap::raw::Encoder::new().compress_vec(b"world").unwrap();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&1i32.to_be_bytes());
        for block in [a, b] {
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        assert_eq!(
            decompress(Compression::Snappy, &framed, 100).unwrap(),
            b"hello world"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in &ALL[1..] {
            for junk in [&b""[..], b"\x00", b"\xff\xff\xff\xff\xff\xff", XERIAL_MAGIC] {
                let _ = decompress(*codec, junk, 1 << 20);
            }
        }
    }
}
