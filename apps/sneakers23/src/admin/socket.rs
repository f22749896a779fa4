//! The admin socket at `/admin_socket` (spec §14.3): a valid admin token or HTTP 403.
//!
//! The connect parameter `token` must be a Phoenix.Token signed with the salt `"admin socket"`
//! (any data; the admin page signs `"admin"`) at most one day ago. Refusals are logged with the
//! book's wording: `connect error missing params`, `connect error :invalid` (garbage, another
//! salt or secret, tampering), `connect error :expired`.
//!
//! Topics: `admin:cart_tracker` (raw presence, [`CartTrackerChannel`]) and `admin:dashboard`
//! (aggregates, [`DashboardChannel`]).

use async_trait::async_trait;
use channels::presence::Presence;
use channels::server::{Assigns, Channel, ConnectError, ConnectInfo, Params, Routes, Socket};
use channels::token::{MaxAge, Signer, TokenError};

use super::channel::{CartTrackerChannel, DashboardChannel};
use super::{ADMIN_TOKEN_MAX_AGE_SECS, DASHBOARD_TOPIC, Dashboard};
use crate::sockets::CART_TRACKER_TOPIC;

/// The admin socket.
pub struct AdminSocket {
    signer: Signer,
    routes: Routes,
}

impl AdminSocket {
    /// A socket verifying tokens with `signer` (salt `"admin socket"`), serving the CartTracker
    /// `presence` and the `dashboard` aggregate.
    pub fn new(signer: Signer, presence: Presence, dashboard: Dashboard) -> AdminSocket {
        let routes = Routes::new()
            .route(CART_TRACKER_TOPIC, move |_| {
                Box::new(CartTrackerChannel::new(presence.clone())) as Box<dyn Channel>
            })
            .route(DASHBOARD_TOPIC, move |_| {
                Box::new(DashboardChannel::new(dashboard.clone())) as Box<dyn Channel>
            });
        AdminSocket { signer, routes }
    }

    /// Checks a connect request's `token` parameter.
    pub fn verify(&self, params: &Params) -> Result<(), ConnectError> {
        check_token(&self.signer, params)
    }
}

/// Accepts `params` when their `token` verifies with `signer` and is at most one day old; the
/// error says why not, in the book's words.
fn check_token(signer: &Signer, params: &Params) -> Result<(), ConnectError> {
    let token = params.get("token").map(String::as_str);
    match signer.verify(token, Some(MaxAge::Seconds(ADMIN_TOKEN_MAX_AGE_SECS))) {
        Ok(_) => Ok(()),
        Err(TokenError::Missing) => Err(ConnectError::new(
            "admin socket: connect error missing params (no token)",
        )),
        Err(TokenError::Invalid) => Err(ConnectError::new("admin socket: connect error :invalid")),
        Err(TokenError::Expired) => Err(ConnectError::new(
            "admin socket: connect error :expired (token older than one day; reload /admin)",
        )),
    }
}

#[async_trait]
impl Socket for AdminSocket {
    async fn connect(&self, params: &Params, _info: &ConnectInfo) -> Result<Assigns, ConnectError> {
        self.verify(params)?;
        Ok(Assigns::none())
    }

    fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
        self.routes.channel(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use channels::token::Term;

    const SECRET: &str = "a secret key base long enough for the tests";

    fn params(token: Option<&str>) -> Params {
        token
            .map(|t| Params::from([("token".to_owned(), t.to_owned())]))
            .unwrap_or_default()
    }

    fn reason(signer: &Signer, token: Option<&str>) -> String {
        check_token(signer, &params(token))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn refusals_are_explained() -> Result<(), Box<dyn std::error::Error>> {
        let signer = Signer::new(SECRET, super::super::ADMIN_TOKEN_SALT)?;
        let now = 1_700_000_000_000_i64;
        let fresh = signer.sign_string("admin")?;
        assert!(check_token(&signer, &params(Some(&fresh))).is_ok());
        let any = signer.sign(&Term::from(7_i64))?;
        assert!(check_token(&signer, &params(Some(&any))).is_ok());
        assert!(reason(&signer, None).contains("connect error missing params"));
        assert!(reason(&signer, Some("garbage")).contains("connect error :invalid"));
        let other_salt = Signer::new(SECRET, "user socket")?.sign_string("admin")?;
        assert!(reason(&signer, Some(&other_salt)).contains(":invalid"));
        let old = signer.sign_at(&Term::from(1_i64), now - 2 * 86_400_000)?;
        assert!(reason(&signer, Some(&old)).contains("connect error :expired"));
        Ok(())
    }
}
