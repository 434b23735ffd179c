//! Provably fair DRAW: a committed seed drives a `ChaCha20` Fisher-Yates shuffle
//! of the VERIFIED participants; prize units go to it in order.
//!
//! Sorting [`Uuid`]s (byte order) equals sorting their canonical lowercase text:
//! hex digits sort like their nibble values and hyphens sit at fixed positions.

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use std::fmt;
use uuid::Uuid;

/// A 32-byte draw seed; secret until revealed, so `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed([u8; 32]);

impl Seed {
    /// A fresh seed from the thread-local CSPRNG (`rand::rng()`, OS-seeded).
    #[must_use]
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut bytes);
        Self(bytes)
    }

    /// Parses exactly 64 hex characters (either case); `None` otherwise.
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// The seed of exactly 32 `bytes` (as stored); `None` otherwise.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The revealed form: 64 lowercase hex characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The published commitment: lowercase hex SHA-256 of the 32 seed bytes.
    #[must_use]
    pub fn commitment(&self) -> String {
        hex::encode(Sha256::digest(self.0))
    }

    /// The raw seed bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(..)")
    }
}

/// One prize unit given to one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    /// The prize.
    pub prize_id: Uuid,
    /// Unit number within the prize, `1..=quantity`.
    pub unit: u32,
    /// The winner.
    pub participant_id: Uuid,
}

/// Why [`verify`] rejected a revealed seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The seed is not exactly 64 hex characters.
    BadSeed,
    /// SHA-256 of the seed differs from the commitment.
    CommitmentMismatch,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadSeed => "draw seed is not 64 hex characters",
            Self::CommitmentMismatch => "draw seed does not match its commitment",
        })
    }
}

impl std::error::Error for VerifyError {}

/// `r mod bound` as an index (`bound >= 1`), exact on every pointer width.
fn index_below(r: u64, bound: usize) -> usize {
    // A `bound` wider than `u64` exceeds `r`, so then `r mod bound == r`.
    let rem = u64::try_from(bound).map_or(r, |b| r % b);
    // `rem < bound`, so it fits in `usize`: the fallback is unreachable.
    usize::try_from(rem).unwrap_or(0)
}

/// Sorts `participants` ascending (text order) and Fisher-Yates shuffles them.
///
/// Keystream: `ChaCha20` (RFC 8439) keyed by `seed`, nonce 0, counter 0, read as
/// little-endian `u64`s `r`; for `i = n-1` down to 1, swap `i` and `r mod (i+1)`.
/// `ChaCha20Rng`'s 64-bit counter equals RFC 8439's for the first 2^32 blocks
/// (any `n < 2^35`). Ids must be distinct participants; they are not deduplicated.
#[must_use]
pub fn shuffle(seed: &Seed, participants: &[Uuid]) -> Vec<Uuid> {
    let mut list = participants.to_vec();
    list.sort_unstable();
    let mut rng = ChaCha20Rng::from_seed(seed.0);
    for i in (1..list.len()).rev() {
        list.swap(i, index_below(rng.next_u64(), i + 1));
    }
    list
}

/// Lazy [`unit_order`]: huge quantities allocate nothing beyond the winners.
fn units(prizes: &[(Uuid, u32)]) -> impl Iterator<Item = (Uuid, u32)> {
    let mut sorted = prizes.to_vec();
    sorted.sort_by_key(|&(id, _)| id);
    sorted
        .into_iter()
        .flat_map(|(id, quantity)| (1..=quantity).map(move |unit| (id, unit)))
}

/// `(prize id, quantity)` to `(prize id, unit)`: prizes by ascending id, then `1..=quantity`.
#[must_use]
pub fn unit_order(prizes: &[(Uuid, u32)]) -> Vec<(Uuid, u32)> {
    units(prizes).collect()
}

/// Gives the k-th prize unit to the k-th shuffled participant; stops at the shorter list.
#[must_use]
pub fn assign(seed: &Seed, participants: &[Uuid], prizes: &[(Uuid, u32)]) -> Vec<Assignment> {
    units(prizes)
        .zip(shuffle(seed, participants))
        .map(|((prize_id, unit), participant_id)| Assignment {
            prize_id,
            unit,
            participant_id,
        })
        .collect()
}

/// Public verifier: checks the revealed seed against its commitment
/// (case-insensitive hex), then recomputes the assignments.
///
/// # Errors
///
/// [`VerifyError::BadSeed`] if `seed_hex` is not 64 hex characters;
/// [`VerifyError::CommitmentMismatch`] if its SHA-256 is not `commitment`.
pub fn verify(
    seed_hex: &str,
    commitment: &str,
    participants: &[Uuid],
    prizes: &[(Uuid, u32)],
) -> Result<Vec<Assignment>, VerifyError> {
    let seed = Seed::from_hex(seed_hex).ok_or(VerifyError::BadSeed)?;
    if !seed.commitment().eq_ignore_ascii_case(commitment) {
        return Err(VerifyError::CommitmentMismatch);
    }
    Ok(assign(&seed, participants, prizes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::new_v4()).collect()
    }

    #[test]
    fn keystream_matches_rfc8439_a1_vector1() {
        let mut rng = ChaCha20Rng::from_seed([0; 32]);
        assert_eq!(rng.next_u64(), 0x903d_f1a0_ade0_b876);
        assert_eq!(rng.next_u64(), 0x28bd_8653_e56a_5d40);
    }

    #[test]
    fn shuffle_known_answer_and_text_order() {
        // Zero seed: r0 mod 3 = 0, r1 mod 2 = 0, so [a,b,c] -> [c,b,a] -> [b,c,a].
        let [a, b, c] = [1u128, 2, 3].map(Uuid::from_u128);
        assert_eq!(shuffle(&Seed([0; 32]), &[c, a, b]), [b, c, a]);
        let mut by_value = ids(500);
        let mut by_text = by_value.clone();
        by_value.sort_unstable();
        by_text.sort_by_key(Uuid::to_string);
        assert_eq!(by_value, by_text);
    }

    #[test]
    fn shuffle_is_deterministic_permutation_independent_of_input_order() {
        let (seed, mut people) = (Seed::random(), ids(50));
        let mut out = shuffle(&seed, &people);
        people.reverse();
        assert_eq!(out, shuffle(&seed, &people));
        assert_ne!(out, shuffle(&Seed::random(), &people));
        out.sort_unstable();
        people.sort_unstable();
        assert_eq!(out, people);
    }

    #[test]
    fn seed_hex_commitment_and_debug() {
        let zero = "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925";
        assert_eq!(Seed([0; 32]).commitment(), zero);
        let seed = Seed::random();
        let upper = seed.to_hex().to_uppercase();
        assert_eq!(Seed::from_hex(&upper), Some(seed.clone()));
        for bad in ["0".repeat(63), "0".repeat(66), "g".repeat(64)] {
            assert_eq!(Seed::from_hex(&bad), None);
        }
        assert_eq!(format!("{seed:?}"), "Seed(..)");
    }

    #[test]
    fn verify_checks_seed_and_commitment() {
        let (seed, people, prizes) = (Seed::random(), ids(5), [(Uuid::new_v4(), 2)]);
        let (hex, upper) = (seed.to_hex(), seed.commitment().to_uppercase());
        let good = verify(&hex, &upper, &people, &prizes);
        assert_eq!(good, Ok(assign(&seed, &people, &prizes)));
        let other = Seed::random().commitment();
        let bad = verify(&hex, &other, &people, &prizes);
        assert_eq!(bad, Err(VerifyError::CommitmentMismatch));
        let bad = verify("xyz", &other, &people, &prizes);
        assert_eq!(bad, Err(VerifyError::BadSeed));
    }

    #[test]
    fn assign_stops_at_shorter_list() {
        let (seed, p1, p2) = (Seed::random(), Uuid::from_u128(2), Uuid::from_u128(1));
        let prizes = [(p1, 2), (p2, 3), (Uuid::from_u128(3), 0)];
        let order = unit_order(&prizes);
        assert_eq!(order, [(p2, 1), (p2, 2), (p2, 3), (p1, 1), (p1, 2)]);
        for (n, units) in [(3, 3), (10, 5), (0, 0)] {
            let people = ids(n);
            let got = assign(&seed, &people, &prizes);
            let got_units: Vec<_> = got.iter().map(|a| (a.prize_id, a.unit)).collect();
            let winners: Vec<_> = got.iter().map(|a| a.participant_id).collect();
            assert_eq!(got_units, order[..units]);
            assert_eq!(winners, shuffle(&seed, &people)[..units]);
        }
    }
}
