//! Erlang External Term Format (`term_to_binary`/`binary_to_term`) for the
//! [`Term`] subset.
//!
//! Encoding makes the same choices as `term_to_binary/1` on current OTP, so a
//! token signed here has the bytes an Elixir node would produce for the same
//! term (maps excepted: their pairs are written in the order given):
//!
//! | term | tag |
//! |---|---|
//! | integer 0..=255 | 97 `SMALL_INTEGER_EXT` |
//! | other `i32` | 98 `INTEGER_EXT` (big-endian) |
//! | other integers | 110 `SMALL_BIG_EXT` (sign byte, little-endian magnitude) |
//! | float | 70 `NEW_FLOAT_EXT` |
//! | atom | 119 `SMALL_ATOM_UTF8_EXT` (118 when longer than 255 bytes) |
//! | binary | 109 `BINARY_EXT` |
//! | tuple | 104 `SMALL_TUPLE_EXT` / 105 `LARGE_TUPLE_EXT` |
//! | map | 116 `MAP_EXT` |
//! | `[]` | 106 `NIL_EXT` |
//! | list of 1..=65535 integers in 0..=255 | 107 `STRING_EXT` |
//! | other lists | 108 `LIST_EXT` + elements + `NIL_EXT` |
//!
//! Decoding also reads `LARGE_BIG_EXT` (111), the Latin-1 atoms of older OTP
//! releases (100 `ATOM_EXT`, 115 `SMALL_ATOM_EXT`) and zlib-compressed terms
//! (80). Anything else (pids, ports, references, funs, improper lists, bit
//! strings) is refused, as is nesting deeper than [`MAX_DEPTH`], a term
//! followed by extra bytes, or a compressed term that inflates past
//! [`MAX_INFLATED_LEN`]. Decoding never panics and never allocates more than
//! the input can justify.
//!
//! Why one file of about 620 lines: encoder and decoder of one format, each tag's two directions
//! side by side; over half of it is the round-trip and hostile-input tests at its end.

use std::io::Read;

use super::Term;

/// The version byte that starts every encoded term.
const VERSION: u8 = 131;

const COMPRESSED: u8 = 80;
const NEW_FLOAT_EXT: u8 = 70;
const SMALL_INTEGER_EXT: u8 = 97;
const INTEGER_EXT: u8 = 98;
const ATOM_EXT: u8 = 100;
const SMALL_TUPLE_EXT: u8 = 104;
const LARGE_TUPLE_EXT: u8 = 105;
const NIL_EXT: u8 = 106;
const STRING_EXT: u8 = 107;
const LIST_EXT: u8 = 108;
const BINARY_EXT: u8 = 109;
const SMALL_BIG_EXT: u8 = 110;
const LARGE_BIG_EXT: u8 = 111;
const SMALL_ATOM_EXT: u8 = 115;
const MAP_EXT: u8 = 116;
const ATOM_UTF8_EXT: u8 = 118;
const SMALL_ATOM_UTF8_EXT: u8 = 119;

/// How deeply terms may nest before decoding gives up (protects the stack).
pub const MAX_DEPTH: usize = 128;

/// The largest size a compressed term may inflate to (protects memory).
pub const MAX_INFLATED_LEN: usize = 1 << 20;

/// Why a term could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TermError {
    /// The input ended in the middle of a term.
    #[error("term truncated")]
    Truncated,
    /// The input does not start with the version byte 131.
    #[error("not an encoded term: version byte {0:?}, expected 131")]
    BadVersion(Option<u8>),
    /// A tag outside the supported subset (pid, port, reference, fun...).
    #[error("unsupported term tag {0}")]
    UnsupportedTag(u8),
    /// Bytes remain after the term.
    #[error("{0} unexpected bytes after the term")]
    TrailingBytes(usize),
    /// Terms nest deeper than [`MAX_DEPTH`].
    #[error("term nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// An integer outside what [`Term::Integer`] holds.
    #[error("integer does not fit 128 bits")]
    IntegerTooLarge,
    /// A bignum with a sign byte other than 0 or 1.
    #[error("invalid bignum sign byte {0}")]
    BadSign(u8),
    /// A UTF-8 atom that is not UTF-8.
    #[error("atom is not valid UTF-8")]
    InvalidAtom,
    /// A list whose tail is not `[]`.
    #[error("improper lists are not supported")]
    ImproperList,
    /// NaN or an infinity, which Erlang cannot represent.
    #[error("float {0} is not finite")]
    NonFiniteFloat(f64),
    /// A compressed term that does not inflate to its announced size, or
    /// announces more than [`MAX_INFLATED_LEN`].
    #[error("compressed term is corrupt or larger than {MAX_INFLATED_LEN} bytes")]
    BadCompression,
    /// A value too long for its length field (or, for atoms, longer than
    /// Erlang's 255-character limit).
    #[error("{what} is too long to encode")]
    TooLong {
        /// What was too long.
        what: &'static str,
    },
}

/// Encodes a term as `term_to_binary/1` would (version byte included).
pub fn encode(term: &Term) -> Result<Vec<u8>, TermError> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    encode_term(term, &mut out, 0)?;
    Ok(out)
}

/// Encodes the tuple of `items` without building a [`Term::Tuple`] (which
/// would need owned, cloned elements).
pub(crate) fn encode_tuple(items: &[&Term]) -> Result<Vec<u8>, TermError> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    match u8::try_from(items.len()) {
        Ok(arity) => out.extend_from_slice(&[SMALL_TUPLE_EXT, arity]),
        Err(_) => {
            out.push(LARGE_TUPLE_EXT);
            out.extend_from_slice(&len32(items.len(), "tuple")?);
        }
    }
    for item in items {
        encode_term(item, &mut out, 1)?;
    }
    Ok(out)
}

/// Decodes bytes made by `term_to_binary/1` (or [`encode`]).
pub fn decode(bytes: &[u8]) -> Result<Term, TermError> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => match rest.split_first() {
            Some((&COMPRESSED, compressed)) => decode_compressed(compressed),
            _ => decode_all(rest),
        },
        Some((&other, _)) => Err(TermError::BadVersion(Some(other))),
        None => Err(TermError::BadVersion(None)),
    }
}

fn decode_all(bytes: &[u8]) -> Result<Term, TermError> {
    let mut decoder = Decoder { input: bytes };
    let term = decoder.term(0)?;
    match decoder.input.len() {
        0 => Ok(term),
        extra => Err(TermError::TrailingBytes(extra)),
    }
}

fn decode_compressed(bytes: &[u8]) -> Result<Term, TermError> {
    let (size, zlib) = bytes.split_first_chunk::<4>().ok_or(TermError::Truncated)?;
    let size = usize::try_from(u32::from_be_bytes(*size)).map_err(|_| TermError::BadCompression)?;
    if size > MAX_INFLATED_LEN {
        return Err(TermError::BadCompression);
    }
    let mut inflated = Vec::with_capacity(size);
    // Read one byte past the announced size to detect a lying header.
    let limit = u64::try_from(size + 1).map_err(|_| TermError::BadCompression)?;
    flate2::read::ZlibDecoder::new(zlib)
        .take(limit)
        .read_to_end(&mut inflated)
        .map_err(|_| TermError::BadCompression)?;
    if inflated.len() != size {
        return Err(TermError::BadCompression);
    }
    decode_all(&inflated)
}

fn encode_term(term: &Term, out: &mut Vec<u8>, depth: usize) -> Result<(), TermError> {
    if depth > MAX_DEPTH {
        return Err(TermError::TooDeep);
    }
    match term {
        Term::Integer(i) => encode_integer(*i, out),
        Term::Float(x) => {
            if !x.is_finite() {
                return Err(TermError::NonFiniteFloat(*x));
            }
            out.push(NEW_FLOAT_EXT);
            out.extend_from_slice(&x.to_be_bytes());
        }
        Term::Atom(name) => {
            if name.chars().count() > 255 {
                return Err(TermError::TooLong { what: "atom" });
            }
            match u8::try_from(name.len()) {
                Ok(len) => out.extend_from_slice(&[SMALL_ATOM_UTF8_EXT, len]),
                Err(_) => {
                    out.push(ATOM_UTF8_EXT);
                    out.extend_from_slice(&len16(name.len(), "atom")?);
                }
            }
            out.extend_from_slice(name.as_bytes());
        }
        Term::Binary(bytes) => {
            out.push(BINARY_EXT);
            out.extend_from_slice(&len32(bytes.len(), "binary")?);
            out.extend_from_slice(bytes);
        }
        Term::Tuple(items) => {
            match u8::try_from(items.len()) {
                Ok(arity) => out.extend_from_slice(&[SMALL_TUPLE_EXT, arity]),
                Err(_) => {
                    out.push(LARGE_TUPLE_EXT);
                    out.extend_from_slice(&len32(items.len(), "tuple")?);
                }
            }
            for item in items {
                encode_term(item, out, depth + 1)?;
            }
        }
        Term::Map(pairs) => {
            out.push(MAP_EXT);
            out.extend_from_slice(&len32(pairs.len(), "map")?);
            for (key, value) in pairs {
                encode_term(key, out, depth + 1)?;
                encode_term(value, out, depth + 1)?;
            }
        }
        Term::List(items) => encode_list(items, out, depth)?,
    }
    Ok(())
}

fn encode_list(items: &[Term], out: &mut Vec<u8>, depth: usize) -> Result<(), TermError> {
    if items.is_empty() {
        out.push(NIL_EXT);
        return Ok(());
    }
    let bytes: Option<Vec<u8>> = items
        .iter()
        .map(|item| match item {
            Term::Integer(i) => u8::try_from(*i).ok(),
            _ => None,
        })
        .collect();
    // term_to_binary writes short lists of bytes (charlists) as STRING_EXT.
    if let Some((bytes, len)) =
        bytes.and_then(|bytes| u16::try_from(bytes.len()).ok().map(|len| (bytes, len)))
    {
        out.push(STRING_EXT);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&bytes);
        return Ok(());
    }
    out.push(LIST_EXT);
    out.extend_from_slice(&len32(items.len(), "list")?);
    for item in items {
        encode_term(item, out, depth + 1)?;
    }
    out.push(NIL_EXT);
    Ok(())
}

fn encode_integer(i: i128, out: &mut Vec<u8>) {
    if let Ok(small) = u8::try_from(i) {
        out.extend_from_slice(&[SMALL_INTEGER_EXT, small]);
    } else if let Ok(int) = i32::try_from(i) {
        out.push(INTEGER_EXT);
        out.extend_from_slice(&int.to_be_bytes());
    } else {
        let magnitude = i.unsigned_abs().to_le_bytes();
        let digits = magnitude.len() - magnitude.iter().rev().take_while(|&&b| b == 0).count();
        let sign = u8::from(i < 0);
        // At most 16 digits: a u8 length always fits.
        out.extend_from_slice(&[SMALL_BIG_EXT, digits as u8, sign]);
        out.extend_from_slice(magnitude.get(..digits).unwrap_or_default());
    }
}

fn len16(len: usize, what: &'static str) -> Result<[u8; 2], TermError> {
    u16::try_from(len)
        .map(u16::to_be_bytes)
        .map_err(|_| TermError::TooLong { what })
}

fn len32(len: usize, what: &'static str) -> Result<[u8; 4], TermError> {
    u32::try_from(len)
        .map(u32::to_be_bytes)
        .map_err(|_| TermError::TooLong { what })
}

/// Most elements reserved ahead of a list, tuple or map. Without a cap, each
/// of [`MAX_DEPTH`] nested headers announcing billions of elements reserved
/// room for the whole remaining input (an inflated megabyte, 32 bytes per
/// element): gigabytes of address space for a one-kilobyte compressed term.
const MAX_PREALLOC: usize = 1024;

/// Reads terms from the front of `input`.
struct Decoder<'a> {
    input: &'a [u8],
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TermError> {
        let (head, tail) = self.input.split_at_checked(n).ok_or(TermError::Truncated)?;
        self.input = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TermError> {
        let (head, tail) = self
            .input
            .split_first_chunk::<N>()
            .ok_or(TermError::Truncated)?;
        self.input = tail;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, TermError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<usize, TermError> {
        Ok(usize::from(u16::from_be_bytes(self.array()?)))
    }

    fn u32(&mut self) -> Result<usize, TermError> {
        usize::try_from(u32::from_be_bytes(self.array()?)).map_err(|_| TermError::Truncated)
    }

    /// Capacity to reserve for `count` elements of at least one byte each:
    /// never more than the remaining input can hold, nor more than
    /// [`MAX_PREALLOC`]; beyond that the vector grows as elements are read.
    fn capacity(&self, count: usize) -> usize {
        count.min(self.input.len()).min(MAX_PREALLOC)
    }

    fn term(&mut self, depth: usize) -> Result<Term, TermError> {
        if depth > MAX_DEPTH {
            return Err(TermError::TooDeep);
        }
        let tag = self.u8()?;
        match tag {
            SMALL_INTEGER_EXT => Ok(Term::Integer(self.u8()?.into())),
            INTEGER_EXT => Ok(Term::Integer(i32::from_be_bytes(self.array()?).into())),
            SMALL_BIG_EXT => {
                let n = usize::from(self.u8()?);
                self.bignum(n)
            }
            LARGE_BIG_EXT => {
                let n = self.u32()?;
                self.bignum(n)
            }
            NEW_FLOAT_EXT => {
                let x = f64::from_be_bytes(self.array()?);
                if x.is_finite() {
                    Ok(Term::Float(x))
                } else {
                    Err(TermError::NonFiniteFloat(x))
                }
            }
            ATOM_UTF8_EXT => {
                let len = self.u16()?;
                self.utf8_atom(len)
            }
            SMALL_ATOM_UTF8_EXT => {
                let len = usize::from(self.u8()?);
                self.utf8_atom(len)
            }
            ATOM_EXT => {
                let len = self.u16()?;
                self.latin1_atom(len)
            }
            SMALL_ATOM_EXT => {
                let len = usize::from(self.u8()?);
                self.latin1_atom(len)
            }
            BINARY_EXT => {
                let len = self.u32()?;
                Ok(Term::Binary(self.take(len)?.to_vec()))
            }
            SMALL_TUPLE_EXT => {
                let arity = usize::from(self.u8()?);
                Ok(Term::Tuple(self.terms(arity, depth)?))
            }
            LARGE_TUPLE_EXT => {
                let arity = self.u32()?;
                Ok(Term::Tuple(self.terms(arity, depth)?))
            }
            NIL_EXT => Ok(Term::List(Vec::new())),
            STRING_EXT => {
                let len = self.u16()?;
                let bytes = self.take(len)?;
                Ok(Term::List(
                    bytes.iter().map(|&b| Term::Integer(b.into())).collect(),
                ))
            }
            LIST_EXT => {
                let len = self.u32()?;
                let items = self.terms(len, depth)?;
                match self.u8()? {
                    NIL_EXT => Ok(Term::List(items)),
                    _ => Err(TermError::ImproperList),
                }
            }
            MAP_EXT => {
                let arity = self.u32()?;
                let mut pairs = Vec::with_capacity(self.capacity(arity));
                for _ in 0..arity {
                    let key = self.term(depth + 1)?;
                    let value = self.term(depth + 1)?;
                    pairs.push((key, value));
                }
                Ok(Term::Map(pairs))
            }
            other => Err(TermError::UnsupportedTag(other)),
        }
    }

    fn terms(&mut self, count: usize, depth: usize) -> Result<Vec<Term>, TermError> {
        let mut items = Vec::with_capacity(self.capacity(count));
        for _ in 0..count {
            items.push(self.term(depth + 1)?);
        }
        Ok(items)
    }

    fn bignum(&mut self, n: usize) -> Result<Term, TermError> {
        let sign = self.u8()?;
        let digits = self.take(n)?;
        // Little-endian: high zero digits do not change the value.
        let significant = digits.len() - digits.iter().rev().take_while(|&&b| b == 0).count();
        let mut magnitude = [0u8; 16];
        let digits = digits.get(..significant).unwrap_or_default();
        magnitude
            .get_mut(..significant)
            .ok_or(TermError::IntegerTooLarge)?
            .copy_from_slice(digits);
        let magnitude = u128::from_le_bytes(magnitude);
        let value = match sign {
            0 => i128::try_from(magnitude).map_err(|_| TermError::IntegerTooLarge)?,
            1 => 0i128
                .checked_sub_unsigned(magnitude)
                .ok_or(TermError::IntegerTooLarge)?,
            other => return Err(TermError::BadSign(other)),
        };
        Ok(Term::Integer(value))
    }

    fn utf8_atom(&mut self, len: usize) -> Result<Term, TermError> {
        let bytes = self.take(len)?;
        let name = std::str::from_utf8(bytes).map_err(|_| TermError::InvalidAtom)?;
        Ok(Term::Atom(name.to_owned()))
    }

    fn latin1_atom(&mut self, len: usize) -> Result<Term, TermError> {
        let bytes = self.take(len)?;
        Ok(Term::Atom(bytes.iter().map(|&b| char::from(b)).collect()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nested_huge_headers_reserve_little() {
        // 100 nested lists each announcing 2^32 - 1 elements, then NILs up to
        // MAX_INFLATED_LEN, compressed to about a kilobyte.
        let mut inner = [108, 255, 255, 255, 255].repeat(100);
        inner.resize(MAX_INFLATED_LEN, NIL_EXT);
        let decoder = Decoder { input: &inner[5..] };
        assert_eq!(decoder.capacity(u32::MAX as usize), MAX_PREALLOC);
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut zlib, &inner).unwrap();
        let mut bytes = vec![VERSION, COMPRESSED];
        bytes.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&zlib.finish().unwrap());
        assert!(bytes.len() < 4096);
        assert_eq!(decode(&bytes), Err(TermError::Truncated));
    }

    fn round_trip(term: Term) {
        let bytes = encode(&term).unwrap();
        assert_eq!(decode(&bytes).unwrap(), term, "{bytes:?}");
    }

    #[test]
    fn integers_pick_the_smallest_encoding_and_round_trip() {
        assert_eq!(encode(&Term::Integer(1)).unwrap(), [131, 97, 1]);
        assert_eq!(encode(&Term::Integer(256)).unwrap(), [131, 98, 0, 0, 1, 0]);
        assert_eq!(
            encode(&Term::Integer(-1)).unwrap(),
            [131, 98, 255, 255, 255, 255]
        );
        assert_eq!(
            encode(&Term::Integer(1 << 32)).unwrap(),
            [131, 110, 5, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            encode(&Term::Integer(-(1 << 40))).unwrap(),
            [131, 110, 6, 1, 0, 0, 0, 0, 0, 1]
        );
        for i in [
            0,
            255,
            256,
            i32::MAX.into(),
            i32::MIN.into(),
            i64::MAX.into(),
            i64::MIN.into(),
            u64::MAX.into(),
            i128::MAX,
            i128::MIN,
        ] {
            round_trip(Term::Integer(i));
        }
    }

    #[test]
    fn bignums_with_high_zero_digits_or_large_form_decode() {
        // LARGE_BIG_EXT, 20 digits of which only the first is non-zero.
        let mut bytes = vec![131, 111, 0, 0, 0, 20, 1, 7];
        bytes.extend([0; 19]);
        assert_eq!(decode(&bytes).unwrap(), Term::Integer(-7));
        // 17 significant digits do not fit.
        let mut bytes = vec![131, 110, 17, 0];
        bytes.extend([1; 17]);
        assert_eq!(decode(&bytes), Err(TermError::IntegerTooLarge));
        assert_eq!(decode(&[131, 110, 1, 2, 5]), Err(TermError::BadSign(2)));
    }

    #[test]
    fn byte_lists_use_string_ext_like_term_to_binary() {
        let cart = Term::int_list(&[3, 2, 1]);
        assert_eq!(encode(&cart).unwrap(), [131, 107, 0, 3, 3, 2, 1]);
        round_trip(cart);
        let big = Term::int_list(&[1000, 2]);
        assert_eq!(
            encode(&big).unwrap(),
            [131, 108, 0, 0, 0, 2, 98, 0, 0, 3, 232, 97, 2, 106]
        );
        round_trip(big);
        assert_eq!(encode(&Term::List(vec![])).unwrap(), [131, 106]);
    }

    #[test]
    fn nested_terms_round_trip() {
        round_trip(Term::Tuple(vec![
            Term::atom("v1"),
            Term::from("endpoint"),
            Term::Map(vec![
                (Term::atom("data"), Term::Float(1.5)),
                (
                    Term::from("k"),
                    Term::List(vec![Term::nil(), Term::bool(true)]),
                ),
            ]),
            Term::Binary(vec![0, 255, 1]),
            Term::Tuple((0..300).map(Term::from).collect()),
            Term::atom("é"),
        ]));
    }

    #[test]
    fn legacy_latin1_atoms_decode() {
        assert_eq!(
            decode(&[131, 100, 0, 2, b'o', b'k']).unwrap(),
            Term::atom("ok")
        );
        assert_eq!(decode(&[131, 115, 1, 0xe9]).unwrap(), Term::atom("é"));
    }

    #[test]
    fn compressed_terms_inflate() {
        use std::io::Write;
        let term = Term::from("x".repeat(100).as_str());
        let plain = encode(&term).unwrap();
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        zlib.write_all(&plain[1..]).unwrap();
        let compressed = zlib.finish().unwrap();
        let mut bytes = vec![131, 80];
        bytes.extend(u32::try_from(plain.len() - 1).unwrap().to_be_bytes());
        bytes.extend(&compressed);
        assert_eq!(decode(&bytes).unwrap(), term);
        // A header announcing the wrong size is refused.
        bytes[5] ^= 1;
        assert_eq!(decode(&bytes), Err(TermError::BadCompression));
    }

    #[test]
    fn unsupported_and_malformed_input_is_refused() {
        assert_eq!(decode(&[]), Err(TermError::BadVersion(None)));
        assert_eq!(decode(&[130, 97, 1]), Err(TermError::BadVersion(Some(130))));
        assert_eq!(decode(&[131]), Err(TermError::Truncated));
        assert_eq!(decode(&[131, 97, 1, 0]), Err(TermError::TrailingBytes(1)));
        assert_eq!(decode(&[131, 88]), Err(TermError::UnsupportedTag(88)));
        assert_eq!(
            decode(&[131, 109, 255, 255, 255, 255]),
            Err(TermError::Truncated)
        );
        assert_eq!(
            decode(&[131, 108, 0, 0, 0, 1, 97, 1, 97, 2]),
            Err(TermError::ImproperList)
        );
        assert_eq!(decode(&[131, 119, 1, 0xff]), Err(TermError::InvalidAtom));
        let nan = [131, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0];
        assert!(matches!(decode(&nan), Err(TermError::NonFiniteFloat(_))));
        let mut deep = vec![131];
        deep.extend([104, 1].repeat(MAX_DEPTH + 2));
        deep.push(106);
        assert_eq!(decode(&deep), Err(TermError::TooDeep));
        assert!(matches!(
            encode(&Term::Float(f64::INFINITY)),
            Err(TermError::NonFiniteFloat(_))
        ));
        assert_eq!(
            encode(&Term::atom("a".repeat(256))),
            Err(TermError::TooLong { what: "atom" })
        );
    }
}
