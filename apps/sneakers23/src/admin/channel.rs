//! The admin channels.
//!
//! - [`CartTrackerChannel`] (`admin:cart_tracker`, spec §14.3): right after the join, the
//!   complete CartTracker list is pushed as `presence_state` (`{}` when nobody is there); the
//!   `presence_diff` broadcasts of the topic follow by themselves. This is the stream
//!   phoenix.js `Presence` consumes, kept for compatibility. The list is one frame, so the join
//!   is refused while more than [`MAX_RAW_PRESENCES`] tabs are tracked (reason names the
//!   aggregate view to use instead): with bounded metas ([`sneakers23_core::cart_meta`]) the frame stays
//!   under a few megabytes.
//! - [`DashboardChannel`] (`admin:dashboard`): join always succeeds; right after, the
//!   [`aggregate`](super::AGGREGATE) snapshot is pushed; the publisher's `aggregate_delta`
//!   broadcasts follow. A client that notices a gap in the sequence numbers pushes `snapshot`
//!   and gets the current snapshot as the reply.

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::presence::{PRESENCE_STATE, Presence};
use channels::server::{Channel, Context, Outcome, Reply, StopReason, to_object};

use super::{AGGREGATE, Dashboard};

/// Most tracked tabs for which `admin:cart_tracker` sends its one-frame `presence_state`.
pub const MAX_RAW_PRESENCES: usize = 5_000;

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
        topic: &str,
        _params: Payload,
        _ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        let tracked = self.presence.tracker().count(topic);
        if tracked > MAX_RAW_PRESENCES {
            return Err(OutPayload::Json(to_object(&serde_json::json!({
                "reason": format!(
                    "{tracked} tabs are tracked, more than the {MAX_RAW_PRESENCES} one \
                     presence_state frame may list; join admin:dashboard for the aggregate view"
                )
            }))));
        }
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
