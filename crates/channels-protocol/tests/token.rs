//! Phoenix.Token compatibility: the spec's test vector byte for byte, vectors
//! for the store's data assembled by hand from the spec's construction, and
//! every way a token can fail.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use channels_protocol::token::{KeyError, MaxAge, Signer, Term, TokenError, derive_key, etf};
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::{Sha256, Sha384, Sha512};

/// The spec's inputs (§8.1): secret_key_base is 64 × "a".
const SECRET: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SIGNED_AT: i64 = 1_700_000_000_000;
const DAY_MS: i64 = 86_400_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|d| char::from(d).to_digit(16).unwrap() as u8)
        .collect();
    digits
        .chunks(2)
        .map(|pair| pair[0] * 16 + pair[1])
        .collect()
}

/// One signer for the property tests: deriving a key costs 1000 PBKDF2 rounds.
static PROP_SIGNER: std::sync::LazyLock<Signer> = std::sync::LazyLock::new(|| signer("prop"));

fn signer(salt: &str) -> Signer {
    Signer::new(SECRET, salt).unwrap()
}

/// Assembles a token independently of `Signer`: header, base64url(ETF), and
/// the HMAC (with the named hash) of both under the PBKDF2 key.
fn assemble(salt: &str, header: &str, etf: &[u8]) -> String {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(SECRET.as_bytes(), salt.as_bytes(), 1000, &mut key);
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(etf));
    let mac = match header {
        "SFMyNTY" => {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(signed.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        "SFMzODQ" => {
            let mut mac = Hmac::<Sha384>::new_from_slice(&key).unwrap();
            mac.update(signed.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut mac = Hmac::<Sha512>::new_from_slice(&key).unwrap();
            mac.update(signed.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// The ETF bytes inside a token.
fn payload_of(token: &str) -> Vec<u8> {
    let part = token.split('.').nth(1).unwrap();
    URL_SAFE_NO_PAD.decode(part).unwrap()
}

/// `{<data bytes>, 1_700_000_000_000, 86_400}` assembled by hand: version,
/// SMALL_TUPLE arity 3, the data, SMALL_BIG (6 bytes, positive, little
/// endian) and INTEGER_EXT 86 400.
fn payload_with(data: &[u8]) -> Vec<u8> {
    let mut etf = vec![0x83, 0x68, 0x03];
    etf.extend_from_slice(data);
    etf.extend_from_slice(&unhex("6e 06 00 00 68 e5 cf 8b 01 62 00 01 51 80"));
    etf
}

// ------------------------------------------------------------------ vectors

#[test]
fn spec_test_vector_is_reproduced_byte_for_byte() {
    assert_eq!(
        hex(&derive_key(SECRET.as_bytes(), b"user auth")),
        "31fbb3adecec68c972fd2697491c1a02763359667d5ac06901233fb98a57fb14"
    );
    let token = signer("user auth")
        .sign_at(&Term::from(1_i64), SIGNED_AT)
        .unwrap();
    assert_eq!(
        hex(&payload_of(&token)),
        "83680361016e06000068e5cf8b0162000151 80".replace(' ', "")
    );
    assert_eq!(
        token,
        "SFMyNTY.g2gDYQFuBgAAaOXPiwFiAAFRgA.9gShOaPCMVYklRMi2bi1jGGGEQ1n5rsnhPvGUJk-QLQ"
    );
    assert_eq!(
        signer("user auth").verify_at(Some(&token), None, SIGNED_AT + 1),
        Ok(Term::Integer(1))
    );
}

#[test]
fn string_data_is_a_binary_ext() {
    // §8.1: data "user-123" is BINARY_EXT 6d 00 00 00 08 + bytes.
    let token = signer("user auth")
        .sign_at(&Term::from("user-123"), SIGNED_AT)
        .unwrap();
    let mut data = unhex("6d 00 00 00 08");
    data.extend_from_slice(b"user-123");
    assert_eq!(payload_of(&token), payload_with(&data));
    assert_eq!(
        token,
        assemble("user auth", "SFMyNTY", &payload_with(&data))
    );
}

#[test]
fn store_vectors_match_hand_assembled_etf() {
    // Inputs: secret 64 × "a", signed_at 1_700_000_000_000 ms, max_age 86 400.

    // Cart [3, 2, 1], salt "cart": term_to_binary writes a list of small
    // integers as STRING_EXT (107), u16 length 3, then the bytes.
    let cart = signer("cart")
        .sign_at(&Term::int_list(&[3, 2, 1]), SIGNED_AT)
        .unwrap();
    let cart_etf = payload_with(&unhex("6b 00 03 03 02 01"));
    assert_eq!(
        hex(&cart_etf),
        "8368036b0003030201".to_owned() + "6e06000068e5cf8b016200015180"
    );
    assert_eq!(cart, assemble("cart", "SFMyNTY", &cart_etf));
    assert_eq!(
        signer("cart").verify_at(Some(&cart), None, SIGNED_AT),
        Ok(Term::int_list(&[3, 2, 1]))
    );

    // "admin", salt "admin auth": BINARY_EXT, u32 length 5, the bytes.
    let admin = signer("admin auth")
        .sign_at(&Term::from("admin"), SIGNED_AT)
        .unwrap();
    let admin_etf = payload_with(&unhex("6d 00 00 00 05 61 64 6d 69 6e"));
    assert_eq!(admin, assemble("admin auth", "SFMyNTY", &admin_etf));
    assert_eq!(
        signer("admin auth")
            .verify_at(Some(&admin), None, SIGNED_AT)
            .unwrap()
            .as_str(),
        Some("admin")
    );
}

#[test]
fn hs384_and_hs512_tokens_verify() {
    let etf = payload_with(&[0x61, 0x07]);
    for header in ["SFMzODQ", "SFM1MTI"] {
        let token = assemble("user auth", header, &etf);
        assert_eq!(
            signer("user auth").verify_at(Some(&token), None, SIGNED_AT),
            Ok(Term::Integer(7)),
            "{header}"
        );
    }
}

#[test]
fn elixir_made_terms_outside_our_encoder_verify() {
    // {%{user_id: 7, roles: [:admin]}, signed_at, 86400} with legacy Latin-1
    // atoms, as older OTP releases wrote them.
    let mut data = unhex("74 00 00 00 02");
    data.extend_from_slice(&unhex("64 00 07"));
    data.extend_from_slice(b"user_id");
    data.extend_from_slice(&[0x61, 7]);
    data.extend_from_slice(&unhex("73 05"));
    data.extend_from_slice(b"roles");
    data.extend_from_slice(&unhex("6c 00 00 00 01 77 05"));
    data.extend_from_slice(b"admin");
    data.push(0x6a);
    let token = assemble("user auth", "SFMyNTY", &payload_with(&data));
    let term = signer("user auth")
        .verify_at(Some(&token), None, SIGNED_AT)
        .unwrap();
    assert_eq!(term.get_atom("user_id"), Some(&Term::Integer(7)));
    assert_eq!(
        term.get_atom("roles"),
        Some(&Term::List(vec![Term::atom("admin")]))
    );
}

#[test]
fn compressed_payloads_verify() {
    use std::io::Write;
    let plain = payload_with(&{
        let mut d = unhex("6d 00 00 01 00");
        d.extend([b'z'; 256]);
        d
    });
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(&plain[1..]).unwrap();
    let mut etf = vec![0x83, 0x50];
    etf.extend(u32::try_from(plain.len() - 1).unwrap().to_be_bytes());
    etf.extend(zlib.finish().unwrap());
    let token = assemble("user auth", "SFMyNTY", &etf);
    assert_eq!(
        signer("user auth").verify_at(Some(&token), None, SIGNED_AT),
        Ok(Term::Binary(vec![b'z'; 256]))
    );
}

#[test]
fn legacy_payload_shapes_verify_with_a_one_day_max_age() {
    let signed_at = unhex("6e 06 00 00 68 e5 cf 8b 01");
    // {data, signed}
    let mut tuple = vec![0x83, 0x68, 0x02, 0x61, 0x05];
    tuple.extend_from_slice(&signed_at);
    // %{data: 5, signed: signed_at}
    let mut map = unhex("83 74 00 00 00 02 77 04");
    map.extend_from_slice(b"data");
    map.extend_from_slice(&[0x61, 0x05, 0x77, 0x06]);
    map.extend_from_slice(b"signed");
    map.extend_from_slice(&signed_at);
    for etf in [tuple, map] {
        let token = assemble("user auth", "SFMyNTY", &etf);
        let s = signer("user auth");
        assert_eq!(
            s.verify_at(Some(&token), None, SIGNED_AT + DAY_MS),
            Ok(Term::Integer(5))
        );
        assert_eq!(
            s.verify_at(Some(&token), None, SIGNED_AT + DAY_MS + 1),
            Err(TokenError::Expired)
        );
    }
}

// ------------------------------------------------------------------ behaviour

#[test]
fn sign_then_verify_now() {
    let s = signer("user socket");
    let token = s.sign(&Term::from("user-123")).unwrap();
    assert_eq!(
        s.verify(Some(&token), None).unwrap().as_str(),
        Some("user-123")
    );
    let cart = s.sign_int_list(&[10, 20, 30]).unwrap();
    assert_eq!(s.verify_int_list(Some(&cart), None), Ok(vec![10, 20, 30]));
    let admin = s.sign_string("admin").unwrap();
    assert_eq!(s.verify_string(Some(&admin), None), Ok("admin".to_owned()));
    // The helpers refuse data of the other type.
    assert_eq!(s.verify_string(Some(&cart), None), Err(TokenError::Invalid));
    assert_eq!(
        s.verify_int_list(Some(&admin), None),
        Err(TokenError::Invalid)
    );
}

#[test]
fn a_missing_token_is_missing() {
    assert_eq!(
        signer("s").verify_at(None, None, SIGNED_AT),
        Err(TokenError::Missing)
    );
    assert_eq!(
        signer("s").verify_string(None, None),
        Err(TokenError::Missing)
    );
}

#[test]
fn tampering_invalidates() {
    let s = signer("user auth");
    let token = s.sign_at(&Term::from("user-123"), SIGNED_AT).unwrap();
    let parts: Vec<&str> = token.split('.').collect();

    // Another payload under the original signature.
    let forged_payload = URL_SAFE_NO_PAD.encode(payload_with(&unhex(
        "6d 00 00 00 08 75 73 65 72 2d 39 39 39",
    )));
    let tampered_payload = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    // One flipped character of the signature.
    let mut mac: Vec<char> = parts[2].chars().collect();
    mac[3] = if mac[3] == 'A' { 'B' } else { 'A' };
    let tampered_mac = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        mac.into_iter().collect::<String>()
    );
    // A truncated signature, another header, extra parts.
    let short_mac = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]);
    let other_header = format!("SFMzODQ.{}.{}", parts[1], parts[2]);
    let four_parts = format!("{token}.x");
    for bad in [
        tampered_payload,
        tampered_mac,
        short_mac,
        other_header,
        four_parts,
    ] {
        assert_eq!(
            s.verify_at(Some(&bad), None, SIGNED_AT),
            Err(TokenError::Invalid),
            "{bad}"
        );
    }
}

#[test]
fn wrong_salt_or_secret_invalidates() {
    let token = signer("user auth")
        .sign_at(&Term::from(1_i64), SIGNED_AT)
        .unwrap();
    assert_eq!(
        signer("cart").verify_at(Some(&token), None, SIGNED_AT),
        Err(TokenError::Invalid)
    );
    let other = Signer::new("b".repeat(64), "user auth").unwrap();
    assert_eq!(
        other.verify_at(Some(&token), None, SIGNED_AT),
        Err(TokenError::Invalid)
    );
}

#[test]
fn expiry_uses_the_embedded_max_age_unless_overridden() {
    let s = signer("user auth");
    let token = s.sign_at(&Term::from(1_i64), SIGNED_AT).unwrap();
    let at = |now: i64, max_age: Option<MaxAge>| s.verify_at(Some(&token), max_age, now);

    // Embedded one day, inclusive.
    assert_eq!(at(SIGNED_AT, None), Ok(Term::Integer(1)));
    assert_eq!(at(SIGNED_AT + DAY_MS, None), Ok(Term::Integer(1)));
    assert_eq!(at(SIGNED_AT + DAY_MS + 1, None), Err(TokenError::Expired));

    // The verifier's max age overrides, both ways.
    assert_eq!(
        at(SIGNED_AT + 11_000, Some(MaxAge::Seconds(10))),
        Err(TokenError::Expired)
    );
    assert_eq!(
        at(SIGNED_AT + 10_000, Some(MaxAge::Seconds(10))),
        Ok(Term::Integer(1))
    );
    assert_eq!(
        at(SIGNED_AT + 2 * DAY_MS, Some(MaxAge::Seconds(3 * 86_400))),
        Ok(Term::Integer(1))
    );
    assert_eq!(
        at(SIGNED_AT + 400 * DAY_MS, Some(MaxAge::Infinity)),
        Ok(Term::Integer(1))
    );

    // A max age <= 0 is always expired.
    assert_eq!(
        at(SIGNED_AT, Some(MaxAge::Seconds(0))),
        Err(TokenError::Expired)
    );
    assert_eq!(
        at(SIGNED_AT, Some(MaxAge::Seconds(-5))),
        Err(TokenError::Expired)
    );

    // Embedded max ages other than the default.
    let short = s
        .sign_with(&Term::from(1_i64), SIGNED_AT, MaxAge::Seconds(60))
        .unwrap();
    assert_eq!(
        s.verify_at(Some(&short), None, SIGNED_AT + 61_000),
        Err(TokenError::Expired)
    );
    assert_eq!(
        s.verify_at(
            Some(&short),
            Some(MaxAge::Seconds(3600)),
            SIGNED_AT + 61_000
        ),
        Ok(Term::Integer(1))
    );
    let zero = s
        .sign_with(&Term::from(1_i64), SIGNED_AT, MaxAge::Seconds(0))
        .unwrap();
    assert_eq!(
        s.verify_at(Some(&zero), None, SIGNED_AT),
        Err(TokenError::Expired)
    );
    let forever = s
        .sign_with(&Term::from(1_i64), SIGNED_AT, MaxAge::Infinity)
        .unwrap();
    assert_eq!(
        payload_of(&forever).last_chunk::<10>().unwrap(),
        b"\x77\x08infinity"
    );
    assert_eq!(
        s.verify_at(Some(&forever), None, SIGNED_AT + 4000 * DAY_MS),
        Ok(Term::Integer(1))
    );
}

#[test]
fn extreme_ages_and_dates_neither_overflow_nor_panic() {
    let s = signer("user auth");
    // max_age = 1e300 seconds (a float): practically forever.
    let mut huge_age = unhex("83 68 03 61 01 6e 06 00 00 68 e5 cf 8b 01 46");
    huge_age.extend(1e300_f64.to_be_bytes());
    let token = assemble("user auth", "SFMyNTY", &huge_age);
    assert_eq!(
        s.verify_at(Some(&token), None, i64::MAX),
        Ok(Term::Integer(1))
    );
    // signed_at = -(2^127 - 1): long expired.
    let mut ancient = unhex("83 68 03 61 01 6e 10 01");
    ancient.extend([0xff; 15]);
    ancient.extend(unhex("7f 62 00 01 51 80"));
    let token = assemble("user auth", "SFMyNTY", &ancient);
    assert_eq!(
        s.verify_at(Some(&token), None, SIGNED_AT),
        Err(TokenError::Expired)
    );
}

#[test]
fn future_dated_tokens_are_invalid() {
    let s = signer("user auth");
    let token = s.sign_at(&Term::from(1_i64), SIGNED_AT).unwrap();
    assert_eq!(
        s.verify_at(Some(&token), None, SIGNED_AT - 1),
        Err(TokenError::Invalid)
    );
}

#[test]
fn unexpected_payloads_are_invalid() {
    let s = signer("user auth");
    let cases = [
        unhex("83 61 01"),                                     // not a tuple
        unhex("83 68 03 61 01 6d 00 00 00 00 62 00 01 51 80"), // signed_at a binary
        unhex("83 68 03 61 01 61 01 6d 00 00 00 00"),          // max_age a binary
        unhex("83 68 04 61 01 61 01 61 01 61 01"),             // 4-tuple
        unhex("83 68 03 61 01 61 01"),                         // truncated
        unhex("83 58 00 00"),                                  // a pid tag
        b"not etf".to_vec(),
        Vec::new(),
    ];
    for etf in cases {
        let token = assemble("user auth", "SFMyNTY", &etf);
        assert_eq!(
            s.verify_at(Some(&token), None, SIGNED_AT),
            Err(TokenError::Invalid),
            "{}",
            hex(&etf)
        );
    }
}

#[test]
fn garbage_strings_are_invalid() {
    let s = signer("user auth");
    for garbage in [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "SFMyNTY..",
        "SFMyNTY.!!!.???",
        "SFMyNTY.g2gD.",
        "SFMyNTY.g2gDYQFuBgAAaOXPiwFiAAFRgA",
        "é.é.é",
        "SFMyNTY.====.====",
    ] {
        assert_eq!(
            s.verify_at(Some(garbage), None, SIGNED_AT),
            Err(TokenError::Invalid),
            "{garbage:?}"
        );
    }
}

#[test]
fn short_secrets_are_refused() {
    assert_eq!(
        Signer::new("x".repeat(19), "salt").unwrap_err(),
        KeyError::SecretTooShort { len: 19 }
    );
    assert!(Signer::new("x".repeat(20), "salt").is_ok());
    // The key never shows in debug output.
    let debug = format!("{:?}", signer("salt"));
    assert_eq!(debug, "Signer { .. }");
}

#[test]
fn unencodable_data_fails_to_sign() {
    assert!(matches!(
        signer("s").sign_at(&Term::Float(f64::NAN), SIGNED_AT),
        Err(etf::TermError::NonFiniteFloat(_))
    ));
}

// ------------------------------------------------------------------ properties

fn term() -> impl Strategy<Value = Term> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Term::from),
        any::<u64>().prop_map(Term::from),
        any::<i128>().prop_map(Term::Integer),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Term::Float),
        "\\PC{0,10}".prop_map(Term::atom),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Term::Binary),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Term::List),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Term::Tuple),
            prop::collection::vec((inner.clone(), inner), 0..4).prop_map(Term::Map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Any term signs and verifies back to itself.
    #[test]
    fn signed_terms_verify_to_themselves(data in term(), offset in 0..DAY_MS) {
        let s = &*PROP_SIGNER;
        let token = s.sign_at(&data, SIGNED_AT).unwrap();
        prop_assert_eq!(s.verify_at(Some(&token), None, SIGNED_AT + offset), Ok(data));
    }

    /// Arbitrary strings never panic verification and never verify.
    #[test]
    fn arbitrary_strings_never_verify(garbage in "\\PC{0,80}|SFMyNTY\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,43}") {
        prop_assert_eq!(
            PROP_SIGNER.verify_at(Some(&garbage), None, SIGNED_AT),
            Err(TokenError::Invalid)
        );
    }

    /// Authenticated garbage (a correct MAC over arbitrary bytes) never panics
    /// the term decoder.
    #[test]
    fn authenticated_garbage_never_panics(mut etf in prop::collection::vec(any::<u8>(), 0..64), version in any::<bool>()) {
        if version {
            etf.insert(0, 0x83);
        }
        let token = assemble("prop", "SFMyNTY", &etf);
        let _ = PROP_SIGNER.verify_at(Some(&token), None, SIGNED_AT);
    }
}
