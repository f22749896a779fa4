//! The Channels server: sockets, channels, the connection state machine and its transports.
//!
//! An application implements [`Socket`] (who may connect, which [`Channel`] serves which topic)
//! and mounts it with [`transport::socket_router`] under a path such as `/socket`, which gives
//! `/socket/websocket` and `/socket/longpoll`, the URLs the `phoenix` JavaScript client uses.
//! Every connection shares one [`Endpoint`] for options and cluster-wide broadcasts.

mod channel;
pub(crate) mod connection;
pub(crate) mod context;
pub(crate) mod endpoint;
mod event;
pub(crate) mod log_limit;
pub(crate) mod metrics;
mod origin;
mod socket;
pub mod transport;

pub use channel::{
    Channel, Info, InvalidPayload, Outcome, Reply, StopReason, parse, to_object, unhandled,
};
pub use context::{ChannelHandle, Context, ReplyRef, Timer};
pub use endpoint::{DISCONNECT, DrainOptions, DrainReport, ENV_SETTINGS, Endpoint, EndpointConfig};
pub use event::{EventError, parse_event};
pub use origin::{CheckOrigin, OriginError, OriginPattern};
pub use socket::{Assigns, ConnectError, ConnectInfo, Params, Routes, Socket, topic_matches};
