//! Peer-assisted distribution: a clip in fixed chunks, each with its own BLAKE3 (pure, but
//! for [`hash_chunks`] and [`held_in`], which read a file).
//!
//! A receiver serves its clips, and the verified chunks of clips it is still downloading, to
//! its peers with the same HTTP service as the master. The master lists those peers as
//! `sources` in a manifest entry and serves the clip's chunk hashes
//! (`GET /api/media/objects/{id}/chunks`). A fetcher asks the peers for whole chunks by
//! `Range`, checks each chunk against the master's hash before it writes it, and takes a
//! chunk that does not match (a lying or corrupt peer) from the master ([`crate::swarm`]).
//! The whole clip's BLAKE3 is still checked at the end, as for a download from the master.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::resume::parse_content_range;
use crate::store::StoreError;

/// Bytes in a chunk (the last one may be shorter).
pub const CHUNK: u64 = 4 * 1024 * 1024;

/// A clip's chunk hashes, as the master serves them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkList {
    /// Bytes in a chunk.
    pub chunk: u64,
    /// Bytes in the clip.
    pub total: u64,
    /// BLAKE3 (hex) of each chunk, in order.
    pub hashes: Vec<String>,
}

impl ChunkList {
    /// The byte range `[start, end)` of chunk `k`.
    pub fn range(&self, k: usize) -> (u64, u64) {
        let start = k as u64 * self.chunk;
        (start, (start + self.chunk).min(self.total))
    }

    /// How many chunks.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the clip is empty.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `bytes` are chunk `k`.
    pub fn matches(&self, k: usize, bytes: &[u8]) -> bool {
        self.hashes
            .get(k)
            .is_some_and(|h| *h == blake3::hash(bytes).to_hex().as_str())
    }

    /// Whether the list fits a clip of `total` bytes (chunk count and size).
    pub fn fits(&self, total: u64) -> bool {
        self.chunk > 0
            && self.total == total
            && self.hashes.len() as u64 == total.div_ceil(self.chunk)
    }
}

/// The chunk a resumed download starts at: the whole chunks already in the `.part` file
/// (a partial chunk is fetched again, so less than one chunk is ever fetched twice).
pub fn resume_chunk(have: u64, chunk: u64) -> usize {
    (have / chunk.max(1)) as usize
}

/// A salt from a node id (FNV-1a).
pub fn salt(node_id: &str) -> u64 {
    node_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Checks a reply to `Range: bytes=start-(end-1)` for a clip of `total` bytes: a 206 whose
/// `Content-Range` is exactly that range.
pub fn check_chunk_reply(
    status: u16,
    content_range: Option<&str>,
    start: u64,
    end: u64,
    total: u64,
) -> Result<(), String> {
    if status != 206 {
        return Err(format!(
            "answered {status} to a request for bytes {start}-{}",
            end - 1
        ));
    }
    let got = content_range.unwrap_or("");
    match parse_content_range(got) {
        Some(r) if r.start == start && r.end + 1 == end && r.total == Some(total) => Ok(()),
        _ => Err(format!(
            "sent Content-Range {got:?} for bytes {start}-{} of {total}",
            end - 1
        )),
    }
}

/// The chunk hashes of the file at `path`.
pub fn hash_chunks(path: &Path, chunk: u64) -> Result<ChunkList, StoreError> {
    let read_error = |e| StoreError::Read {
        path: path.display().to_string(),
        source: e,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let mut buf = vec![0u8; chunk as usize];
    let mut hashes = Vec::new();
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = file.read(&mut buf[filled..]).map_err(read_error)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        total += filled as u64;
        hashes.push(blake3::hash(&buf[..filled]).to_hex().to_string());
        if filled < buf.len() {
            break;
        }
    }
    Ok(ChunkList {
        chunk,
        total,
        hashes,
    })
}

/// Which chunks of `list` the file at `path` already holds (a resumed `.part`, written chunk
/// by chunk in any order): each chunk-sized piece that hashes to its chunk's hash. A missing
/// file holds none; a piece cut short or never written does not match.
pub fn held_in(path: &Path, list: &ChunkList) -> Result<Vec<bool>, StoreError> {
    let read_error = |e| StoreError::Read {
        path: path.display().to_string(),
        source: e,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![false; list.len()]),
        Err(e) => return Err(read_error(e)),
    };
    let mut buf = vec![0u8; list.chunk as usize];
    let mut held = Vec::with_capacity(list.len());
    for k in 0..list.len() {
        let (start, end) = list.range(k);
        let want = (end - start) as usize;
        let mut filled = 0;
        while filled < want {
            let n = file.read(&mut buf[filled..want]).map_err(read_error)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        held.push(filled == want && list.matches(k, &buf[..want]));
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_clip_and_check_their_bytes() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("clip");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let list = hash_chunks(&path, 4096).expect("hash");
        assert_eq!(list.len(), 3);
        assert!(list.fits(10_000));
        assert!(!list.fits(10_001));
        assert_eq!(list.range(0), (0, 4096));
        assert_eq!(list.range(2), (8192, 10_000), "the last chunk is short");
        assert!(list.matches(2, &bytes[8192..]));
        let mut bad = bytes[4096..8192].to_vec();
        bad[7] ^= 1;
        assert!(!list.matches(1, &bad), "one flipped bit is caught");
        assert!(!list.matches(3, &[]), "no such chunk");
        assert_eq!(
            resume_chunk(8191, 4096),
            1,
            "a partial chunk is fetched again"
        );
        assert_eq!(resume_chunk(8192, 4096), 2);

        // A `.part` written out of order: chunks 0 and 2 in place, 1 a hole of zeros.
        let part = dir.path().join("clip.part");
        let mut partial = bytes.clone();
        partial[4096..8192].fill(0);
        std::fs::write(&part, &partial).expect("write");
        assert_eq!(held_in(&part, &list).expect("held"), [true, false, true]);
        std::fs::write(&part, &bytes[..9000]).expect("write");
        assert_eq!(
            held_in(&part, &list).expect("held"),
            [true, true, false],
            "a last chunk cut short is not held"
        );
        assert_eq!(
            held_in(&dir.path().join("none"), &list).expect("held"),
            [false; 3]
        );
    }

    #[test]
    fn node_ids_give_different_salts() {
        assert_ne!(salt("media-1"), salt("media-2"));
    }

    #[test]
    fn a_chunk_reply_must_be_exactly_the_range_asked() {
        assert_eq!(
            check_chunk_reply(206, Some("bytes 4096-8191/10000"), 4096, 8192, 10_000),
            Ok(())
        );
        assert!(check_chunk_reply(200, None, 4096, 8192, 10_000).is_err());
        assert!(check_chunk_reply(206, Some("bytes 4096-8190/10000"), 4096, 8192, 10_000).is_err());
        assert!(check_chunk_reply(206, Some("bytes 4096-8191/9999"), 4096, 8192, 10_000).is_err());
    }
}
