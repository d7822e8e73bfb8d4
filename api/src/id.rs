//! Object IDs: 25 characters of lowercase base36, as swarmkit makes them (`ny2pwh3w96ztm2v2fc8rstune`).
//!
//! The random source is passed in so that tests and simulations stay deterministic.

use rand::Rng;

/// Length of every ID skep makes.
pub const ID_LEN: usize = 25;

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A new random ID (about 129 bits of entropy).
pub fn new_id(rng: &mut impl Rng) -> String {
    (0..ID_LEN).map(|_| ALPHABET[rng.gen_range(0..36)] as char).collect()
}

/// Whether `s` has the shape of an ID skep made.
pub fn is_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ids_are_base36_and_distinct() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = new_id(&mut rng);
        let b = new_id(&mut rng);
        assert!(is_id(&a) && is_id(&b));
        assert_ne!(a, b);
        assert!(!is_id("ABC"));
        assert!(!is_id("ny2pwh3w96ztm2v2fc8rstun!"));
    }
}
