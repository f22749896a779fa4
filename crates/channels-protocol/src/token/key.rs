//! Key derivation and message authentication, as Plug.Crypto does them.

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

/// PBKDF2 iterations Phoenix.Token uses by default.
pub(crate) const KDF_ITERATIONS: u32 = 1000;

/// Derives the 32-byte signing key: PBKDF2-HMAC-SHA256(secret_key_base, salt,
/// 1000 iterations), Phoenix.Token's default key generator.
pub fn derive_key(secret_key_base: &[u8], salt: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret_key_base, salt, KDF_ITERATIONS, &mut key);
    key
}

/// The MAC algorithms a token header can name. Signing always uses HS256;
/// verification accepts all three, like Plug.Crypto.MessageVerifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Hs256,
    Hs384,
    Hs512,
}

impl Algorithm {
    /// The token header: base64 of the algorithm name.
    pub(crate) fn header(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "SFMyNTY",
            Algorithm::Hs384 => "SFMzODQ",
            Algorithm::Hs512 => "SFM1MTI",
        }
    }

    pub(crate) fn from_header(header: &str) -> Option<Self> {
        [Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512]
            .into_iter()
            .find(|alg| alg.header() == header)
    }
}

/// A signing key with its HMAC-SHA256 state keyed once: every token signed (always HS256) and
/// most verified start from a copy of it instead of hashing the padded key twice more.
#[derive(Clone)]
pub(crate) struct Keyed {
    key: [u8; 32],
    hs256: Hmac<Sha256>,
}

impl Keyed {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Keyed {
            hs256: Hmac::<Sha256>::new(&padded::<64>(&key).into()),
            key,
        }
    }

    /// HMAC of `message` under the key with `alg`'s hash.
    ///
    /// HMAC zero-pads keys shorter than the hash's block size (RFC 2104 §2);
    /// padding the key ourselves gives the same MAC and lets us use the
    /// infallible fixed-size constructor.
    pub(crate) fn mac(&self, alg: Algorithm, message: &[u8]) -> Vec<u8> {
        let key = &self.key;
        match alg {
            Algorithm::Hs256 => {
                let mut mac = self.hs256.clone();
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            Algorithm::Hs384 => {
                let mut mac = Hmac::<Sha384>::new(&padded::<128>(key).into());
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            Algorithm::Hs512 => {
                let mut mac = Hmac::<Sha512>::new(&padded::<128>(key).into());
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }
}

fn padded<const N: usize>(key: &[u8; 32]) -> [u8; N] {
    let mut block = [0u8; N];
    for (slot, byte) in block.iter_mut().zip(key) {
        *slot = *byte;
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut mac = <M as Mac>::new_from_slice(key).expect("any key length");
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn padded_and_pre_keyed_macs_are_hmac_itself() {
        let key = derive_key(&[b'a'; 64], b"user auth");
        let keyed = Keyed::new(key);
        for message in [&b""[..], b"message", &[7u8; 200]] {
            assert_eq!(
                keyed.mac(Algorithm::Hs256, message),
                reference::<Hmac<Sha256>>(&key, message)
            );
            assert_eq!(
                keyed.mac(Algorithm::Hs384, message),
                reference::<Hmac<Sha384>>(&key, message)
            );
            assert_eq!(
                keyed.mac(Algorithm::Hs512, message),
                reference::<Hmac<Sha512>>(&key, message)
            );
        }
        // The keyed state is copied, never advanced: the same message gives the same MAC twice.
        assert_eq!(
            keyed.mac(Algorithm::Hs256, b"m"),
            keyed.mac(Algorithm::Hs256, b"m")
        );
    }
}
