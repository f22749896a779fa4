//! The Channels server: sockets, channels, the connection state machine and its transports.
//!
//! An application implements [`Socket`] (who may connect, which [`Channel`] serves which topic)
//! and mounts it with [`transport::socket_router`] under a path such as `/socket`, which gives
//! `/socket/websocket` and `/socket/longpoll`, the URLs the `phoenix` JavaScript client uses.
//! Every connection shares one [`Endpoint`] for options and cluster-wide broadcasts.

mod assigns;
mod channel;
pub(crate) mod connection;
pub(crate) mod context;
pub(crate) mod endpoint;
mod event;
pub(crate) mod log_limit;
pub(crate) mod metrics;
mod origin;
mod reply;
mod socket;
pub mod transport;

pub use assigns::Assigns;
pub use channel::{Channel, Info, InvalidPayload, Outcome, StopReason, parse, unhandled};
pub use context::{ChannelHandle, Context, ReplyRef, Timer};
pub use endpoint::{DISCONNECT, DrainOptions, DrainReport, ENV_SETTINGS, Endpoint, EndpointConfig};
pub use event::{EventError, parse_event};
pub use origin::{CheckOrigin, OriginError, OriginPattern};
pub use reply::{Reply, to_object};
pub use socket::{ConnectError, ConnectInfo, Params, Routes, Socket, topic_matches};
