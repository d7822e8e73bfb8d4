//! Lowercase base36 text of big-endian unsigned numbers, as Go's `big.Int.Text(36)` prints them.

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `bytes` (a big-endian unsigned number) in base36, left-padded with `'0'` to at least `width` characters.
pub(crate) fn encode_padded(bytes: &[u8], width: usize) -> String {
    let mut num = bytes.to_vec();
    let mut digits = Vec::with_capacity(width);
    while num.iter().any(|&b| b != 0) {
        // Long division of the whole number by 36; the remainder is the next digit.
        let mut rem = 0u32;
        for b in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*b);
            *b = (acc / 36) as u8;
            rem = acc % 36;
        }
        digits.push(ALPHABET[rem as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.iter().rev().map(|&d| char::from(d)).collect()
}

/// Whether every character of `s` is a lowercase base36 digit.
pub(crate) fn is_base36(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_go_big_int_text() {
        // Reference values computed with arbitrary-precision integers (Python int / Go big.Int).
        assert_eq!(encode_padded(&[0xff; 16], 25), "f5lxx1zz5pnorynqglhzmsp33");
        assert_eq!(
            encode_padded(&[0xff; 32], 50),
            "6dp5qcb22im238nr3wvp0ic7q99w035jmy2iw7i6n43d37jtof"
        );
        assert_eq!(encode_padded(&[35], 25), "000000000000000000000000z");
        assert_eq!(encode_padded(&[0, 0], 3), "000");
        assert_eq!(encode_padded(&[1, 0], 0), "74");
    }

    #[test]
    fn charset() {
        assert!(is_base36("09az"));
        assert!(!is_base36("A"));
        assert!(!is_base36("-"));
    }
}
