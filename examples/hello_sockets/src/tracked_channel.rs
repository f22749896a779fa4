//! TrackedChannel (chapter 10): once joined, its user is tracked in the
//! [`UserTracker`] on `tracked` until the channel ends (leave, tab closed). Clients receive no
//! presence messages.

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::{Channel, Context, Outcome, StopReason};
use tracker::Process;

use crate::auth_socket::UserId;
use crate::user_tracker::UserTracker;

/// See the module docs.
pub struct TrackedChannel {
    tracker: UserTracker,
    /// The tracked process: dropping it (with the channel) is the leave.
    tracked: Option<Process>,
}

impl TrackedChannel {
    /// A channel tracking in `tracker`.
    pub fn new(tracker: UserTracker) -> Self {
        TrackedChannel {
            tracker,
            tracked: None,
        }
    }
}

#[async_trait]
impl Channel for TrackedChannel {
    async fn join(
        &mut self,
        _: &str,
        _: Payload,
        _: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        Ok(OutPayload::empty())
    }

    async fn after_join(&mut self, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        let user = ctx
            .assigns()
            .get::<UserId>()
            .map(|u| u.0.clone())
            .unwrap_or_default();
        match self.tracker.track(ctx.topic(), &user) {
            Ok(process) => {
                self.tracked = Some(process);
                Ok(())
            }
            Err(error) => Err(StopReason::Error(format!("tracking {user}: {error}"))),
        }
    }

    async fn handle_in(&mut self, event: &str, _: Payload, _: &mut Context<'_>) -> Outcome {
        panic!("TrackedChannel has no handle_in for event {event:?}")
    }
}
