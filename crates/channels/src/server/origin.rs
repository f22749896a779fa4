//! `check_origin`: which web pages may open a socket.
//!
//! Browsers send an `Origin` header with every WebSocket upgrade, so a server can refuse pages of
//! other sites (cross-site WebSocket hijacking). Requests without the header (non-browser
//! clients) are not checked, as in Phoenix.

use std::str::FromStr;

/// One allowed origin: `https://example.com`, `//example.com:8443`, `//*.example.com`, or a bare
/// host `example.com`. A missing scheme or port matches any; `*.` matches the domain and every
/// subdomain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginPattern {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
}

/// The policy for the `Origin` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CheckOrigin {
    /// Accept every origin (development).
    #[default]
    Disabled,
    /// Accept only origins matching one of the patterns.
    Allow(Vec<OriginPattern>),
    /// Accept only an origin whose scheme, host and port are those of the request itself.
    SameAsRequest,
}

/// A `check_origin` setting that could not be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid origin pattern {0:?}: expected e.g. `https://example.com`, `//example.com:8443`, `//*.example.com` or `example.com`"
)]
pub struct OriginError(String);

impl FromStr for OriginPattern {
    type Err = OriginError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || OriginError(text.to_owned());
        let (scheme, rest) = match text.split_once("//") {
            Some((scheme, rest)) => {
                let scheme = scheme.strip_suffix(':').unwrap_or(scheme);
                (
                    (!scheme.is_empty()).then(|| scheme.to_ascii_lowercase()),
                    rest,
                )
            }
            None => (None, text),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port.parse::<u16>().map_err(|_| bad())?)),
            None => (rest, None),
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        Ok(OriginPattern {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl FromStr for CheckOrigin {
    type Err = OriginError;

    /// `false`/`off`/empty: disabled; `conn`: same as the request; otherwise a comma-separated list
    /// of [`OriginPattern`]s.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "" | "false" | "off" => Ok(CheckOrigin::Disabled),
            "conn" => Ok(CheckOrigin::SameAsRequest),
            list => list
                .split(',')
                .map(|p| p.trim().parse())
                .collect::<Result<Vec<_>, _>>()
                .map(CheckOrigin::Allow),
        }
    }
}

struct Parsed {
    scheme: String,
    host: String,
    port: u16,
}

fn parse_origin(origin: &str) -> Option<Parsed> {
    let url = url::Url::parse(origin).ok()?;
    Some(Parsed {
        scheme: url.scheme().to_ascii_lowercase(),
        host: url.host_str()?.to_ascii_lowercase(),
        port: url.port_or_known_default()?,
    })
}

impl OriginPattern {
    fn matches(&self, origin: &Parsed) -> bool {
        let host_ok = match self.host.strip_prefix("*.") {
            Some(domain) => origin.host == domain || origin.host.ends_with(&format!(".{domain}")),
            None => origin.host == self.host,
        };
        host_ok
            && self.scheme.as_ref().is_none_or(|s| *s == origin.scheme)
            && self.port.is_none_or(|p| p == origin.port)
    }
}

impl CheckOrigin {
    /// Whether a request with this `Origin` header may connect. `request_host` is the request's
    /// `Host` header and `request_scheme` its scheme, used by [`CheckOrigin::SameAsRequest`].
    pub fn allows(
        &self,
        origin: Option<&str>,
        request_host: Option<&str>,
        request_scheme: &str,
    ) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        match self {
            CheckOrigin::Disabled => true,
            CheckOrigin::Allow(patterns) => {
                parse_origin(origin).is_some_and(|o| patterns.iter().any(|p| p.matches(&o)))
            }
            CheckOrigin::SameAsRequest => {
                let (Some(origin), Some(host)) = (parse_origin(origin), request_host) else {
                    return false;
                };
                let Some(request) = parse_origin(&format!("{request_scheme}://{host}")) else {
                    return false;
                };
                origin.scheme == request.scheme
                    && origin.host == request.host
                    && origin.port == request.port
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(list: &str) -> CheckOrigin {
        list.parse().expect("valid list")
    }

    #[test]
    fn no_origin_header_is_never_checked() {
        assert!(allow("example.com").allows(None, None, "http"));
    }

    #[test]
    fn bare_host_matches_any_scheme_and_port() {
        let check = allow("example.com");
        assert!(check.allows(Some("https://example.com"), None, "http"));
        assert!(check.allows(Some("http://example.com:4000"), None, "http"));
        assert!(!check.allows(Some("https://evil.com"), None, "http"));
        assert!(!check.allows(Some("https://example.com.evil.com"), None, "http"));
    }

    #[test]
    fn scheme_port_and_wildcards_are_compared_when_given() {
        let check = allow("https://sneakers23.com, //app.sneakers23.com:888, //*.other.com");
        assert!(check.allows(Some("https://sneakers23.com"), None, "http"));
        assert!(!check.allows(Some("http://sneakers23.com"), None, "http"));
        assert!(check.allows(Some("http://app.sneakers23.com:888"), None, "http"));
        assert!(!check.allows(Some("http://app.sneakers23.com"), None, "http"));
        assert!(check.allows(Some("https://other.com"), None, "http"));
        assert!(check.allows(Some("https://a.b.other.com"), None, "http"));
        assert!(!check.allows(Some("https://notother.com"), None, "http"));
        assert!(!check.allows(Some("garbage"), None, "http"));
    }

    #[test]
    fn same_as_request_compares_scheme_host_and_port() {
        let check = CheckOrigin::SameAsRequest;
        assert!(check.allows(
            Some("http://localhost:4000"),
            Some("localhost:4000"),
            "http"
        ));
        assert!(!check.allows(
            Some("http://localhost:4001"),
            Some("localhost:4000"),
            "http"
        ));
        assert!(!check.allows(
            Some("https://localhost:4000"),
            Some("localhost:4000"),
            "http"
        ));
        assert!(!check.allows(Some("http://localhost:4000"), None, "http"));
    }

    #[test]
    fn settings_parse_or_say_what_is_wrong() {
        assert_eq!(allow("false"), CheckOrigin::Disabled);
        assert_eq!(allow("conn"), CheckOrigin::SameAsRequest);
        assert!("https://x.com:notaport".parse::<CheckOrigin>().is_err());
    }
}
