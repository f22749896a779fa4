//! hello_sockets as a library: the book's sockets and channels, for the `hello_sockets` binary
//! and for tests that drive them in process with the channel test kit (`channels::testing`).

pub mod app;
pub mod auth_socket;
pub mod console;
pub mod dedupe_channel;
pub mod pages;
pub mod ping_channel;
pub mod pipeline;
pub mod recurring_channel;
pub mod statix;
pub mod stats_socket;
pub mod tracked_channel;
pub mod user_socket;
pub mod user_tracker;
pub mod wildcard_channel;
