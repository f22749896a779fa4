//! Serializer negotiation from the `vsn` query parameter.
//!
//! Phoenix parses `vsn` as a semantic version and picks the first serializer
//! whose requirement matches: `~> 1.0.0` (V1) or `~> 2.0.0` (V2). `~> X.Y.0`
//! means `>= X.Y.0 and < X.(Y+1).0`; a pre-release such as `2.0.0-rc` sorts
//! before `2.0.0` and therefore matches neither, while `2.0.1-rc` matches V2.

use super::{Serializer, VsnError};

/// A parsed `MAJOR.MINOR.PATCH[-pre][+build]` version; only what matching needs.
#[derive(Debug, PartialEq, Eq)]
struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre_release: bool,
}

pub(crate) fn negotiate(vsn: &str) -> Result<Serializer, VsnError> {
    let version = parse(vsn).ok_or_else(|| VsnError::Invalid {
        vsn: vsn.to_owned(),
    })?;
    // `>= X.Y.0` excludes pre-releases of X.Y.0 itself.
    let below_minimum = version.patch == 0 && version.pre_release;
    match (version.major, version.minor, below_minimum) {
        (1, 0, false) => Ok(Serializer::V1),
        (2, 0, false) => Ok(Serializer::V2),
        _ => Err(VsnError::Unsupported {
            vsn: vsn.to_owned(),
        }),
    }
}

fn parse(vsn: &str) -> Option<Version> {
    let (rest, build) = match vsn.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (vsn, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let build_ok = build.is_none_or(|build| identifiers_valid(build, false));
    let pre_ok = pre.is_none_or(|pre| identifiers_valid(pre, true));
    if !(build_ok && pre_ok) {
        return None;
    }
    let mut numbers = core.split('.');
    let major = number(numbers.next()?)?;
    let minor = number(numbers.next()?)?;
    let patch = number(numbers.next()?)?;
    if numbers.next().is_some() {
        return None;
    }
    Some(Version {
        major,
        minor,
        patch,
        pre_release: pre.is_some(),
    })
}

/// A numeric part: ASCII digits without a leading zero.
fn number(part: &str) -> Option<u64> {
    let digits_only = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (part.len() > 1 && part.starts_with('0')) {
        return None;
    }
    part.parse().ok()
}

/// Dot-separated, non-empty identifiers of `[0-9A-Za-z-]`; numeric
/// pre-release identifiers must not have leading zeros.
fn identifiers_valid(identifiers: &str, pre_release: bool) -> bool {
    identifiers.split('.').all(|id| {
        let charset_ok =
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let numeric = id.bytes().all(|b| b.is_ascii_digit());
        charset_ok && !(pre_release && numeric && id.len() > 1 && id.starts_with('0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_elixir_version_match() {
        for (vsn, expected) in [
            ("1.0.0", Some(Serializer::V1)),
            ("1.0.7", Some(Serializer::V1)),
            ("2.0.0", Some(Serializer::V2)),
            ("2.0.3+build.5", Some(Serializer::V2)),
            ("2.0.1-rc.1", Some(Serializer::V2)),
            ("2.0.0-rc.1", None),
            ("2.1.0", None),
            ("1.1.0", None),
            ("3.0.0", None),
            ("0.9.0", None),
        ] {
            assert_eq!(negotiate(vsn).ok(), expected, "{vsn}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_version() {
        for vsn in [
            "",
            "2",
            "2.0",
            "2.0.0.0",
            "v2.0.0",
            "02.0.0",
            "2.0.0-",
            "2.0.0+",
            "2.0.0-01",
            "2.0.0-a..b",
            " 2.0.0",
            "2.0.x",
            "2.0.-1",
            "2.0.0-é",
        ] {
            assert!(
                matches!(negotiate(vsn), Err(VsnError::Invalid { .. })),
                "{vsn:?}"
            );
        }
        assert!(matches!(
            negotiate("3.0.0"),
            Err(VsnError::Unsupported { .. })
        ));
    }
}
