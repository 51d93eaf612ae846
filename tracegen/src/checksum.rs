//! The Internet checksum (RFC 1071), written here on purpose.
//!
//! The generator is an oracle for the engine's parser and tracker, so it must not share code
//! with them: a bug in a shared checksum routine would make both sides agree on wrong bytes.
//!
//! Invariant: [`Checksum`] accumulates 16-bit big-endian words in a `u64` and folds only at the
//! end, so any byte sequence up to 2^48 words can be added without overflow. Chunks are
//! treated as one continuous byte stream: an odd-length chunk leaves its last byte pending and
//! the next chunk continues from there.

/// An incremental one's-complement sum over a byte stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checksum {
    sum: u64,
    /// The high byte of a word whose low byte has not been seen yet.
    pending: Option<u8>,
}

impl Checksum {
    /// An empty sum.
    pub const fn new() -> Self {
        Checksum {
            sum: 0,
            pending: None,
        }
    }

    /// Adds bytes, continuing the stream from any previous call.
    pub fn add(&mut self, mut bytes: &[u8]) -> &mut Self {
        if let Some(hi) = self.pending.take() {
            match bytes.split_first() {
                Some((lo, rest)) => {
                    self.sum += u64::from(u16::from_be_bytes([hi, *lo]));
                    bytes = rest;
                }
                None => {
                    self.pending = Some(hi);
                    return self;
                }
            }
        }
        let mut words = bytes.chunks_exact(2);
        for w in &mut words {
            self.sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            self.pending = Some(*last);
        }
        self
    }

    /// Adds one big-endian 16-bit word (the stream must be at an even position).
    pub fn add_u16(&mut self, v: u16) -> &mut Self {
        self.add(&v.to_be_bytes())
    }

    /// Adds one big-endian 32-bit word (the stream must be at an even position).
    pub fn add_u32(&mut self, v: u32) -> &mut Self {
        self.add(&v.to_be_bytes())
    }

    /// The folded one's-complement sum, not yet complemented.
    pub fn sum16(&self) -> u16 {
        let mut s = self.sum;
        if let Some(hi) = self.pending {
            // An odd trailing byte is padded with a zero byte on the right.
            s += u64::from(hi) << 8;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        // The loop leaves s <= 0xffff.
        u16::try_from(s).unwrap_or(u16::MAX)
    }

    /// The checksum to store in a header: the complement of the folded sum.
    pub fn finish(&self) -> u16 {
        !self.sum16()
    }
}

/// The checksum of one contiguous byte slice.
pub fn checksum(bytes: &[u8]) -> u16 {
    Checksum::new().add(bytes).finish()
}

/// Whether `bytes`, which contain their own checksum field, verify (sum to all ones).
pub fn verifies(bytes: &[u8]) -> bool {
    Checksum::new().add(bytes).sum16() == 0xffff
}

/// A checksum value that is guaranteed not to verify in place of `correct`.
///
/// One's complement has two zeros (0x0000 and 0xffff), so flipping between them would still
/// verify; adding one and skipping that pair always breaks the sum. Never returns 0, which UDP
/// over IPv4 would read as "no checksum".
pub fn corrupted(correct: u16) -> u16 {
    match correct {
        0xffff | 0x0000 => 0x0001,
        c => c + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Checksum::new().add(&data).sum16(), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn split_stream_equals_whole() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        let whole = checksum(&data);
        for cut in [0, 1, 2, 3, 500, 999, 1000, 1001] {
            let mut c = Checksum::new();
            c.add(&data[..cut]).add(&data[cut..]);
            assert_eq!(c.finish(), whole, "cut at {cut}");
        }
        let mut bytewise = Checksum::new();
        for b in &data {
            bytewise.add(std::slice::from_ref(b));
        }
        assert_eq!(bytewise.finish(), whole);
    }

    #[test]
    fn known_ipv4_header() {
        // Header of the conformance SYN (tcp_handshake_data_fin_close, packet 0): 0x13c0.
        let hdr = [
            0x45, 0x00, 0x00, 0x34, 0x10, 0x01, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0x0a, 0x00,
            0x01, 0x02, 0x0a, 0x00, 0x02, 0x02,
        ];
        assert_eq!(checksum(&hdr), 0x13c0);
        let mut with = hdr;
        with[10..12].copy_from_slice(&0x13c0u16.to_be_bytes());
        assert!(verifies(&with));
    }

    #[test]
    fn corrupted_never_verifies() {
        let hdr = [
            0x45u8, 0x00, 0x00, 0x14, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let good = checksum(&hdr);
        for correct in [good, 0, 0xffff, 0xfffe, 1] {
            let bad = corrupted(correct);
            assert_ne!(bad, 0);
            // The sum with `bad` differs from the sum with `correct` by a non-zero amount.
            assert_ne!(
                Checksum::new().add_u16(correct).sum16() % 0xffff,
                bad % 0xffff
            );
        }
        let mut h = hdr;
        h[10..12].copy_from_slice(&corrupted(good).to_be_bytes());
        assert!(!verifies(&h));
    }
}
