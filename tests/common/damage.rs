//! Damage to a file's bytes, for the fuzzing of the file readers (the CLI's,
//! `tests/fuzz_files.rs`, and the checkpoints' in process,
//! `learn/tests/damaged_checkpoints.rs`): cut at a fraction of the length,
//! bytes overwritten at fractions of it, or bytes (digits, which make the
//! numbers of a text header larger, or any) inserted at a fraction of it.

use proptest::prelude::*;

/// A damage to a file.
#[derive(Debug, Clone)]
pub enum Damage {
    Truncate(f64),
    Flip(Vec<(f64, u8)>),
    Insert(f64, Vec<u8>),
}

/// Every kind of damage, at any place.
pub fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Damage::Truncate),
        prop::collection::vec((0.0..1.0f64, any::<u8>()), 1..8).prop_map(Damage::Flip),
        (0.0..1.0f64, prop::collection::vec(b'0'..=b'9', 1..12))
            .prop_map(|(at, b)| Damage::Insert(at, b)),
        (0.0..1.0f64, prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, b)| Damage::Insert(at, b)),
    ]
}

/// `bytes` with the damage `d` done.
pub fn apply(bytes: &[u8], d: &Damage) -> Vec<u8> {
    let at = |f: f64| ((f * bytes.len() as f64) as usize).min(bytes.len());
    match d {
        Damage::Truncate(f) => bytes[..at(*f)].to_vec(),
        Damage::Flip(flips) => {
            let mut b = bytes.to_vec();
            for (f, v) in flips {
                let i = at(*f).min(b.len().saturating_sub(1));
                if let Some(x) = b.get_mut(i) {
                    *x = *v;
                }
            }
            b
        }
        Damage::Insert(f, extra) => {
            let mut b = bytes.to_vec();
            let i = at(*f);
            b.splice(i..i, extra.iter().copied());
            b
        }
    }
}
