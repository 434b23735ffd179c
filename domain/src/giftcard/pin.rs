//! Card codes and pins.
//!
//! A code is 12 characters of Crockford's base32 alphabet (no I, L, O, U),
//! about 60 random bits, shown as `XXXX-XXXX-XXXX`; input is accepted in
//! any case, with or without dashes and spaces. A pin is 6 random digits.
//!
//! The pin is stored twice, never in clear: as a keyed hash (HMAC-SHA256
//! of card id and pin), which the till checks in constant time, and sealed
//! (ChaCha20-Poly1305, the card id as associated data), so the owner and
//! admins can be shown it (the contract's `Card.pin`). Both keys derive
//! from `CARD_SECRET`: without it, a stolen database yields neither pins
//! nor a table to brute-force them offline.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a card code (without dashes).
pub const CODE_LEN: usize = 12;
const NONCE_LEN: usize = 12;

/// The keys that protect pins, derived from `CARD_SECRET`.
#[derive(Clone)]
pub struct CardSecrets {
    hash_key: [u8; 32],
    seal: ChaCha20Poly1305,
}

impl std::fmt::Debug for CardSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardSecrets(..)")
    }
}

fn derive(secret: &SecretString, label: &str) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

impl CardSecrets {
    /// Keys derived from `secret`.
    pub fn new(secret: &SecretString) -> Self {
        let seal_key = derive(secret, "giftdrop card pin seal v1");
        Self {
            hash_key: derive(secret, "giftdrop card pin hash v1"),
            seal: ChaCha20Poly1305::new(&Key::from(seal_key)),
        }
    }

    fn mac(&self, card: Uuid, pin: &str) -> HmacSha256 {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.hash_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(card.as_bytes());
        mac.update(pin.as_bytes());
        mac
    }

    /// The stored hash of `pin` on `card`.
    pub fn hash(&self, card: Uuid, pin: &str) -> Vec<u8> {
        self.mac(card, pin).finalize().into_bytes().to_vec()
    }

    /// True when `pin` is the pin of `card` (constant time).
    pub fn verify(&self, card: Uuid, pin: &str, hash: &[u8]) -> bool {
        self.mac(card, pin).verify_slice(hash).is_ok()
    }

    /// `pin` sealed for `card`: nonce then ciphertext.
    pub fn seal(&self, card: Uuid, pin: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill(&mut nonce);
        let sealed = self
            .seal
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: pin.as_bytes(),
                    aad: card.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// The pin sealed in `sealed` for `card`; `None` if it was sealed
    /// under another `CARD_SECRET` (or tampered with).
    pub fn unseal(&self, card: Uuid, sealed: &[u8]) -> Option<String> {
        if sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let plain = self
            .seal
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: card.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

/// A new random card code (stored form, without dashes).
pub fn new_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A new random 6-digit pin.
pub fn new_pin() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// The stored form of a code typed at a till, or `None` if it cannot be one.
pub fn normalize_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// The display form of a stored code: `XXXX-XXXX-XXXX`.
pub fn display_code(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// True for exactly six ASCII digits.
pub fn is_pin(input: &str) -> bool {
    input.len() == 6 && input.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(text: &str) -> CardSecrets {
        CardSecrets::new(&SecretString::from(text.to_owned()))
    }

    #[test]
    fn a_pin_verifies_only_on_its_own_card_and_unseals_only_with_its_secret() {
        let keys = secrets("one secret");
        let (card, other) = (Uuid::new_v4(), Uuid::new_v4());
        let pin = new_pin();
        assert!(is_pin(&pin));
        let hash = keys.hash(card, &pin);
        assert!(keys.verify(card, &pin, &hash));
        assert!(!keys.verify(other, &pin, &hash));
        let wrong = if pin == "000000" { "000001" } else { "000000" };
        assert!(!keys.verify(card, wrong, &hash));

        let sealed = keys.seal(card, &pin);
        assert!(
            !sealed.windows(6).any(|w| w == pin.as_bytes()),
            "not in clear"
        );
        assert_eq!(keys.unseal(card, &sealed).as_deref(), Some(pin.as_str()));
        assert_eq!(keys.unseal(other, &sealed), None);
        assert_eq!(secrets("another secret").unseal(card, &sealed), None);
    }

    #[test]
    fn codes_are_read_back_however_they_are_typed() {
        let code = new_code();
        assert_eq!(code.len(), CODE_LEN);
        let shown = display_code(&code);
        assert_eq!(shown.len(), CODE_LEN + 2);
        assert_eq!(normalize_code(&shown).as_deref(), Some(code.as_str()));
        assert_eq!(
            normalize_code(&shown.to_lowercase().replace('-', " ")).as_deref(),
            Some(code.as_str())
        );
        assert_eq!(
            normalize_code("ABCD-EFGH-IJKL"),
            None,
            "I and L are not in the alphabet"
        );
        assert_eq!(normalize_code("ABC"), None);
        assert!(!is_pin("12345"));
        assert!(!is_pin("12345a"));
    }
}
