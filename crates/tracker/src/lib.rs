//! Phoenix.Tracker in Rust.

pub mod clock;
pub mod delta;
pub mod engine;
pub mod presence;
pub mod replica;
pub mod state;
pub mod wire;
