//! The admin channels.
//!
//! - [`CartTrackerChannel`] (`admin:cart_tracker`, spec §14.3): join always succeeds; right
//!   after, the complete CartTracker list is pushed as `presence_state` (`{}` when nobody is
//!   there); the `presence_diff` broadcasts of the topic follow by themselves. This is the
//!   stream phoenix.js `Presence` consumes, kept for compatibility.
//! - [`DashboardChannel`] (`admin:dashboard`): join always succeeds; right after, the
//!   [`aggregate`](super::AGGREGATE) snapshot is pushed; the publisher's `aggregate_delta`
//!   broadcasts follow. A client that notices a gap in the sequence numbers pushes `snapshot`
//!   and gets the current snapshot as the reply.

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::presence::{PRESENCE_STATE, Presence};
use channels::server::{Channel, Context, Outcome, Reply, StopReason, to_object};

use super::{AGGREGATE, Dashboard};

/// `admin:cart_tracker`: the raw Phoenix presence stream.
pub struct CartTrackerChannel {
    presence: Presence,
}

impl CartTrackerChannel {
    /// A channel listing `presence`.
    pub fn new(presence: Presence) -> Self {
        Self { presence }
    }
}

#[async_trait]
impl Channel for CartTrackerChannel {
    async fn join(
        &mut self,
        _topic: &str,
        _params: Payload,
        _ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        Ok(OutPayload::empty())
    }

    async fn after_join(&mut self, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        let state = self.presence.list(ctx.topic());
        ctx.push(PRESENCE_STATE, state);
        Ok(())
    }

    async fn handle_in(
        &mut self,
        _event: &str,
        _payload: Payload,
        _ctx: &mut Context<'_>,
    ) -> Outcome {
        Reply::error_reason("unknown event").into()
    }
}

/// `admin:dashboard`: the aggregate view.
pub struct DashboardChannel {
    dashboard: Dashboard,
}

impl DashboardChannel {
    /// A channel serving `dashboard`.
    pub fn new(dashboard: Dashboard) -> Self {
        Self { dashboard }
    }
}

#[async_trait]
impl Channel for DashboardChannel {
    async fn join(
        &mut self,
        _topic: &str,
        _params: Payload,
        _ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        Ok(OutPayload::empty())
    }

    async fn after_join(&mut self, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        ctx.push(AGGREGATE, to_object(&self.dashboard.snapshot()));
        Ok(())
    }

    async fn handle_in(
        &mut self,
        event: &str,
        _payload: Payload,
        _ctx: &mut Context<'_>,
    ) -> Outcome {
        match event {
            "snapshot" => Reply::ok(to_object(&self.dashboard.snapshot())).into(),
            _ => Reply::error_reason("unknown event").into(),
        }
    }
}
