//! Phoenix.Tracker in Rust.

pub mod clock;
pub mod delta;
pub mod presence;
pub mod replica;
pub mod state;
