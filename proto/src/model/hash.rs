//! A fixed, documented hash (FNV-1a, 64-bit), so cookies and derived names never depend on
//! the Rust version or the process.

/// FNV-1a, 64-bit. `fnv1a64(b"")` is `0xcbf29ce484222325`, `fnv1a64(b"a")` is
/// `0xaf63dc4c8601ec8c`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_values() {
        assert_eq!(super::fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
