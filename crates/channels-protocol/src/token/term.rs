//! [`Term`]: the subset of Erlang terms a token can carry.

use std::fmt;

/// An Erlang/Elixir term, as stored in a Phoenix token.
///
/// Only data terms exist here (no pids, references or funs). Elixir's `nil`,
/// `true` and `false` are atoms, so they are [`Term::Atom`] values; see
/// [`Term::nil`] and [`Term::bool`]. Elixir strings are [`Term::Binary`].
/// A charlist such as `[3, 2, 1]` is a [`Term::List`] of integers, whichever
/// of the two list encodings carried it.
///
/// ```
/// use channels_protocol::token::Term;
///
/// let cart = Term::from(&[3_i64, 2, 1][..]);
/// assert_eq!(cart.to_int_list(), Some(vec![3, 2, 1]));
/// assert_eq!(Term::from("admin").as_str(), Some("admin"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// An integer; Erlang's are unbounded, this covers every `i64` and `u64`.
    Integer(i128),
    /// A finite float (Erlang has no NaN or infinities).
    Float(f64),
    /// An atom such as `:ok`, `nil` or `:data`.
    Atom(String),
    /// A binary; Elixir strings are UTF-8 binaries.
    Binary(Vec<u8>),
    /// A proper list.
    List(Vec<Term>),
    /// A tuple.
    Tuple(Vec<Term>),
    /// A map, as key/value pairs in encoding order.
    Map(Vec<(Term, Term)>),
}

impl Term {
    /// Elixir's `nil`.
    pub fn nil() -> Term {
        Term::atom("nil")
    }

    /// Elixir's `true` or `false`.
    pub fn bool(value: bool) -> Term {
        Term::atom(if value { "true" } else { "false" })
    }

    /// An atom, e.g. `Term::atom("ok")` for `:ok`.
    pub fn atom(name: impl Into<String>) -> Term {
        Term::Atom(name.into())
    }

    /// A list of integers, e.g. a cart's item ids.
    pub fn int_list(items: &[i64]) -> Term {
        Term::List(items.iter().map(|&i| Term::Integer(i.into())).collect())
    }

    /// Whether this is `nil`.
    pub fn is_nil(&self) -> bool {
        self.as_atom() == Some("nil")
    }

    /// The value of `true`/`false`, `None` for any other term.
    pub fn as_bool(&self) -> Option<bool> {
        match self.as_atom() {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        }
    }

    /// The atom's name.
    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Term::Atom(name) => Some(name),
            _ => None,
        }
    }

    /// The integer, if it is one that fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Term::Integer(i) => i64::try_from(*i).ok(),
            _ => None,
        }
    }

    /// The binary's text, if it is a UTF-8 binary (an Elixir string).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Term::Binary(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    /// The binary's bytes.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Term::Binary(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The list's elements.
    pub fn as_list(&self) -> Option<&[Term]> {
        match self {
            Term::List(items) => Some(items),
            _ => None,
        }
    }

    /// The tuple's elements.
    pub fn as_tuple(&self) -> Option<&[Term]> {
        match self {
            Term::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The list as integers fitting `i64`; `None` if it is not a list or
    /// holds anything else.
    pub fn to_int_list(&self) -> Option<Vec<i64>> {
        self.as_list()?.iter().map(Term::as_i64).collect()
    }

    /// The value stored under `key`, if this is a map holding it.
    pub fn get(&self, key: &Term) -> Option<&Term> {
        match self {
            Term::Map(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value stored under the atom `key` (Elixir's `map.key`).
    pub fn get_atom(&self, key: &str) -> Option<&Term> {
        match self {
            Term::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_atom() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

impl From<i64> for Term {
    fn from(value: i64) -> Self {
        Term::Integer(value.into())
    }
}

impl From<i32> for Term {
    fn from(value: i32) -> Self {
        Term::Integer(value.into())
    }
}

impl From<u64> for Term {
    fn from(value: u64) -> Self {
        Term::Integer(value.into())
    }
}

impl From<f64> for Term {
    fn from(value: f64) -> Self {
        Term::Float(value)
    }
}

impl From<bool> for Term {
    fn from(value: bool) -> Self {
        Term::bool(value)
    }
}

/// A string becomes a binary, as in Elixir.
impl From<&str> for Term {
    fn from(value: &str) -> Self {
        Term::Binary(value.as_bytes().to_vec())
    }
}

/// A string becomes a binary, as in Elixir.
impl From<String> for Term {
    fn from(value: String) -> Self {
        Term::Binary(value.into_bytes())
    }
}

impl From<&[i64]> for Term {
    fn from(value: &[i64]) -> Self {
        Term::int_list(value)
    }
}

impl From<Vec<Term>> for Term {
    fn from(value: Vec<Term>) -> Self {
        Term::List(value)
    }
}

/// Prints the term in Elixir syntax, for logs and error messages.
impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn join(f: &mut fmt::Formatter<'_>, items: &[Term]) -> fmt::Result {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{item}")?;
            }
            Ok(())
        }
        match self {
            Term::Integer(i) => write!(f, "{i}"),
            Term::Float(x) => write!(f, "{x:?}"),
            Term::Atom(name) if matches!(name.as_str(), "nil" | "true" | "false") => {
                f.write_str(name)
            }
            Term::Atom(name) => write!(f, ":{name:?}"),
            Term::Binary(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => write!(f, "{text:?}"),
                Err(_) => write!(f, "<<{}>>", DisplayBytes(bytes)),
            },
            Term::List(items) => {
                f.write_str("[")?;
                join(f, items)?;
                f.write_str("]")
            }
            Term::Tuple(items) => {
                f.write_str("{")?;
                join(f, items)?;
                f.write_str("}")
            }
            Term::Map(pairs) => {
                f.write_str("%{")?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} => {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

struct DisplayBytes<'a>(&'a [u8]);

impl fmt::Display for DisplayBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{b}")?;
        }
        Ok(())
    }
}
