//! AuthSocket (`/auth_socket`, chapters 4, 5, 6 and 10): WebSocket only, for clients holding a
//! token signed with the salt `"salt identifier"` at most a day ago. The token's data (an
//! integer or a string) is the user id; the socket id is `auth_socket:<user_id>`.
//!
//! Refusals are logged as the book logs them: `AuthSocket connect error missing params` (no
//! `token` parameter), `AuthSocket connect error :invalid` (a token that is not ours),
//! `AuthSocket connect error :expired` (older than a day).
//!
//! | topic | channel |
//! |---|---|
//! | `ping` | [`PingChannel`] |
//! | `tracked` | [`TrackedChannel`] |
//! | `user:*` | [`AuthChannel`] |
//! | `recurring` | [`RecurringChannel`] |

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::{
    Assigns, Channel, ConnectError, ConnectInfo, Context, Outcome, Params, Routes, Socket,
    StopReason, to_object,
};
use channels::token::{MaxAge, Signer, Term, TokenError};
use serde_json::{Value, json};

use crate::ping_channel::PingChannel;
use crate::recurring_channel::RecurringChannel;
use crate::statix::{Statix, unix_ms_now};
use crate::tracked_channel::TrackedChannel;
use crate::user_tracker::UserTracker;

/// The salt of every token of the auth socket, as in the book.
pub const TOKEN_SALT: &str = "salt identifier";
/// How old a token may be: one day.
pub const MAX_AGE_SECONDS: i64 = 86_400;

/// The authenticated user of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserId(pub String);

/// Signs and reads the auth socket's tokens.
#[derive(Clone)]
pub struct Tokens {
    signer: Signer,
}

/// Why a token was refused, in the words of the book's log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `token` parameter.
    MissingParams,
    /// Not signed by us, altered, or not a user id.
    Invalid,
    /// Older than a day.
    Expired,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::MissingParams => "missing params",
            Refusal::Invalid => ":invalid",
            Refusal::Expired => ":expired",
        })
    }
}

impl Tokens {
    /// Tokens signed with `secret_key_base` and [`TOKEN_SALT`].
    pub fn new(secret_key_base: &str) -> anyhow::Result<Tokens> {
        Ok(Tokens {
            signer: Signer::new(secret_key_base, TOKEN_SALT)?,
        })
    }

    /// A token for `user_id`: signed as an integer when it is one (the book signs `1`), else as
    /// a string (`/tracked?user_id=other`).
    pub fn sign(&self, user_id: &str) -> anyhow::Result<String> {
        let term = match user_id.parse::<i64>() {
            Ok(n) => Term::Integer(n.into()),
            Err(_) => Term::Binary(user_id.as_bytes().to_vec()),
        };
        Ok(self.signer.sign(&term)?)
    }

    /// The user id in `token`, if it is ours and at most a day old.
    pub fn verify(&self, token: Option<&str>) -> Result<UserId, Refusal> {
        let token = token.ok_or(Refusal::MissingParams)?;
        match self
            .signer
            .verify(Some(token), Some(MaxAge::Seconds(MAX_AGE_SECONDS)))
        {
            Ok(Term::Integer(n)) => Ok(UserId(n.to_string())),
            Ok(Term::Binary(bytes)) => String::from_utf8(bytes)
                .map(UserId)
                .map_err(|_| Refusal::Invalid),
            Ok(_) | Err(TokenError::Invalid) | Err(TokenError::Missing) => Err(Refusal::Invalid),
            Err(TokenError::Expired) => Err(Refusal::Expired),
        }
    }
}

/// The token-checked socket; see the module docs.
pub struct AuthSocket {
    tokens: Tokens,
    routes: Routes,
}

impl AuthSocket {
    /// The socket with the book's routes.
    pub fn new(tokens: Tokens, statix: Statix, tracker: UserTracker) -> AuthSocket {
        let recurring_tokens = tokens.clone();
        AuthSocket {
            tokens,
            routes: Routes::new()
                .route("ping", |_| Box::new(PingChannel) as Box<dyn Channel>)
                .route("tracked", move |_| {
                    Box::new(TrackedChannel::new(tracker.clone())) as Box<dyn Channel>
                })
                .route("user:*", move |_| {
                    Box::new(AuthChannel {
                        statix: statix.clone(),
                    }) as Box<dyn Channel>
                })
                .route("recurring", move |_| {
                    Box::new(RecurringChannel::new(recurring_tokens.clone())) as Box<dyn Channel>
                }),
        }
    }
}

#[async_trait]
impl Socket for AuthSocket {
    async fn connect(&self, params: &Params, _: &ConnectInfo) -> Result<Assigns, ConnectError> {
        match self.tokens.verify(params.get("token").map(String::as_str)) {
            Ok(user) => Ok(Assigns::new(user)),
            Err(refusal) => {
                tracing::error!("AuthSocket connect error {refusal}");
                Err(ConnectError::new(format!(
                    "AuthSocket connect error {refusal}"
                )))
            }
        }
    }

    fn id(&self, assigns: &Assigns) -> Option<String> {
        assigns
            .get::<UserId>()
            .map(|user| format!("auth_socket:{}", user.0))
    }

    fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
        self.routes.channel(topic)
    }
}

/// `user:<id>` (chapter 4): only the connection's own user may join. It intercepts the
/// pipeline's `push_timed` to push its data and record how long delivery took (chapter 6).
pub struct AuthChannel {
    statix: Statix,
}

/// The intercepted pipeline event.
pub const PUSH_TIMED: &str = "push_timed";

#[async_trait]
impl Channel for AuthChannel {
    async fn join(
        &mut self,
        topic: &str,
        _: Payload,
        ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        let requested = topic.strip_prefix("user:").unwrap_or_default();
        let user = ctx.assigns().get::<UserId>().map(|u| u.0.as_str());
        if user == Some(requested) {
            Ok(OutPayload::empty())
        } else {
            tracing::error!(
                "AuthChannel failed {requested} != {}",
                user.unwrap_or_default()
            );
            Err(OutPayload::Json(to_object(
                &json!({"reason": "unauthorized"}),
            )))
        }
    }

    async fn handle_in(&mut self, event: &str, _: Payload, _: &mut Context<'_>) -> Outcome {
        panic!("AuthChannel has no handle_in for event {event:?}")
    }

    fn intercepts(&self) -> &'static [&'static str] {
        &[PUSH_TIMED]
    }

    async fn handle_out(
        &mut self,
        _: &str,
        payload: Value,
        ctx: &mut Context<'_>,
    ) -> Result<(), StopReason> {
        let data = payload.get("data").cloned().unwrap_or_else(|| json!({}));
        ctx.push(PUSH_TIMED, to_object(&data));
        if let Some(at) = payload.get("at").and_then(Value::as_i64) {
            let elapsed = unix_ms_now().saturating_sub(at).max(0) as u64;
            self.statix.histogram("pipeline.push_delivered", elapsed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_integer_or_string_user_ids() {
        let tokens = Tokens::new("a secret key base long enough for the tests").expect("tokens");
        let one = tokens.sign("1").expect("sign");
        assert_eq!(tokens.verify(Some(&one)), Ok(UserId("1".to_owned())));
        let other = tokens.sign("other").expect("sign");
        assert_eq!(tokens.verify(Some(&other)), Ok(UserId("other".to_owned())));
        assert_eq!(tokens.verify(None), Err(Refusal::MissingParams));
        assert_eq!(tokens.verify(Some("nonsense")), Err(Refusal::Invalid));
    }
}
