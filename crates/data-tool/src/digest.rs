//! `sha256:<hex>` content digests, computed over whole buffers or while writing.

use std::{fmt::Write as _, io};

use sha2::{Digest, Sha256};

/// The only digest algorithm this tool produces and verifies.
pub const SHA256_PREFIX: &str = "sha256:";

/// The digest of a byte string, `sha256:<64 hex digits>`.
pub fn sha256(bytes: &[u8]) -> String {
    format_digest(Sha256::digest(bytes).as_slice())
}

fn format_digest(hash: &[u8]) -> String {
    let mut out = String::with_capacity(SHA256_PREFIX.len() + 2 * hash.len());
    out.push_str(SHA256_PREFIX);
    for byte in hash {
        // Writing into a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Whether a string is a well-formed sha256 digest.
pub fn is_sha256(digest: &str) -> bool {
    digest.strip_prefix(SHA256_PREFIX).is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Hashes and counts the bytes fed to it.
#[derive(Clone, Debug, Default)]
pub struct Hasher {
    hash: Sha256,
    len: u64,
}

impl Hasher {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hash.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// The digest and the byte count so far.
    pub fn finish(self) -> (String, u64) {
        (format_digest(self.hash.finalize().as_slice()), self.len)
    }
}

/// A writer that hashes and counts what passes through it on the way to `inner`.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: io::Write> HashingWriter<W> {
    /// Wraps a writer.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::default(),
        }
    }

    /// The wrapped writer, the digest and the byte count of everything written.
    pub fn finish(self) -> (W, String, u64) {
        let (digest, len) = self.hasher.finish();
        (self.inner, digest, len)
    }
}

impl<W: io::Write> io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn the_empty_string_has_the_well_known_digest() {
        assert_eq!(sha256(b""), EMPTY);
        assert!(is_sha256(EMPTY));
    }

    #[test]
    fn malformed_digests_are_recognised() {
        assert!(!is_sha256("sha512:abc"));
        assert!(!is_sha256("sha256:ABC"));
        assert!(!is_sha256(&EMPTY.replace('e', "E")));
    }

    #[test]
    fn writing_through_the_hasher_gives_the_digest_of_the_bytes() {
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"hello ").unwrap();
        writer.write_all(b"world").unwrap();
        let (bytes, digest, len) = writer.finish();
        assert_eq!(bytes, b"hello world");
        assert_eq!(digest, sha256(b"hello world"));
        assert_eq!(len, 11);
    }
}
