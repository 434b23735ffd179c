//! Independent re-implementation of the DRAW contract (no `rand_chacha`, no
//! production code): hand-written RFC 8439 `ChaCha20`, Fisher-Yates, unit order.

use giftdrop_domain::giveaway::draw::{Seed, assign, verify};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// RFC 8439 §2.1 quarter round on state words `a`, `b`, `c`, `d`.
#[allow(clippy::many_single_char_names)]
fn quarter_round(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// Little-endian `u32` at word index `i` of `bytes`.
fn le_word(bytes: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(std::array::from_fn(|k| bytes[4 * i + k]))
}

/// RFC 8439 §2.3 `ChaCha20` block function: 20 rounds, add input state, serialize LE.
#[must_use]
pub fn chacha20_block(key: &[u8; 32], counter: u32, nonce: &[u8; 12]) -> [u8; 64] {
    let constants = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
    let state: [u32; 16] = std::array::from_fn(|i| match i {
        0..=3 => constants[i],
        4..=11 => le_word(key, i - 4),
        12 => counter,
        _ => le_word(nonce, i - 13),
    });
    let mut s = state;
    for _ in 0..10 {
        quarter_round(&mut s, 0, 4, 8, 12);
        quarter_round(&mut s, 1, 5, 9, 13);
        quarter_round(&mut s, 2, 6, 10, 14);
        quarter_round(&mut s, 3, 7, 11, 15);
        quarter_round(&mut s, 0, 5, 10, 15);
        quarter_round(&mut s, 1, 6, 11, 12);
        quarter_round(&mut s, 2, 7, 8, 13);
        quarter_round(&mut s, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&s[i].wrapping_add(state[i]).to_le_bytes());
    }
    out
}

/// Keystream for key = seed, nonce = 0, counter 0, 1, 2, ... read as LE `u64`s.
pub fn keystream_u64s(seed: [u8; 32]) -> impl Iterator<Item = u64> {
    (0u32..).flat_map(move |counter| {
        let block = chacha20_block(&seed, counter, &[0; 12]);
        (0..8).map(move |k| u64::from_le_bytes(std::array::from_fn(|b| block[8 * k + b])))
    })
}

/// Lowercase hex SHA-256.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The contract on canonical uuid text; returns `(prize id, unit, participant id)`.
#[must_use]
pub fn independent_assign(
    seed: [u8; 32],
    participants: &[String],
    prizes: &[(String, u32)],
) -> Vec<(String, u32, String)> {
    let mut list = participants.to_vec();
    list.sort();
    for (i, r) in (1..list.len()).rev().zip(keystream_u64s(seed)) {
        let Ok(bound) = u64::try_from(i + 1) else {
            unreachable!("usize wider than u64")
        };
        let Ok(j) = usize::try_from(r % bound) else {
            unreachable!("r mod (i+1) <= i")
        };
        list.swap(i, j);
    }
    let mut prizes = prizes.to_vec();
    prizes.sort();
    let units = prizes
        .iter()
        .flat_map(|(id, quantity)| (1..=*quantity).map(move |unit| (id.clone(), unit)));
    units
        .zip(list)
        .map(|((prize, unit), winner)| (prize, unit, winner))
        .collect()
}

#[test]
fn block_function_matches_rfc8439_2_3_2() {
    let key: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap());
    let nonce = [0, 0, 0, 0x09, 0, 0, 0, 0x4a, 0, 0, 0, 0];
    let expected = "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e\
                    d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e";
    assert_eq!(hex::encode(chacha20_block(&key, 1, &nonce)), expected);
}

#[test]
fn keystream_matches_rfc8439_a1_vector1() {
    let block = chacha20_block(&[0; 32], 0, &[0; 12]);
    assert_eq!(
        hex::encode(&block[..16]),
        "76b8e0ada0f13d90405d6ae55386bd28"
    );
    assert_eq!(keystream_u64s([0; 32]).next(), Some(0x903d_f1a0_ade0_b876));
}

#[test]
fn independent_matches_production() {
    for n in [0usize, 1, 2, 7, 100, 1000] {
        let people: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
        let text: Vec<String> = people.iter().map(Uuid::to_string).collect();
        let prize_sets: [Vec<(Uuid, u32)>; 5] = [
            vec![],
            vec![(Uuid::new_v4(), 1)],
            vec![
                (Uuid::new_v4(), 3),
                (Uuid::new_v4(), 0),
                (Uuid::now_v7(), 2),
            ],
            (0..12).map(|k| (Uuid::new_v4(), k % 4 * 50)).collect(),
            vec![(Uuid::new_v4(), 5000)],
        ];
        for prizes in &prize_sets {
            let prize_text: Vec<_> = prizes.iter().map(|(id, q)| (id.to_string(), *q)).collect();
            let units: u32 = prizes.iter().map(|p| p.1).sum();
            for _ in 0..3 {
                let bytes: [u8; 32] = rand::random();
                let seed = Seed::from_hex(&hex::encode(bytes)).unwrap();
                let got = assign(&seed, &people, prizes);
                let got_text: Vec<_> = got
                    .iter()
                    .map(|a| (a.prize_id.to_string(), a.unit, a.participant_id.to_string()))
                    .collect();
                let expected = independent_assign(bytes, &text, &prize_text);
                assert_eq!(got_text, expected, "n={n} units={units}");
                assert_eq!(got.len(), n.min(usize::try_from(units).unwrap()));
                assert_eq!(seed.commitment(), sha256_hex(&bytes));
                let verified = verify(&seed.to_hex(), &sha256_hex(&bytes), &people, prizes);
                assert_eq!(verified, Ok(got));
            }
        }
    }
}
