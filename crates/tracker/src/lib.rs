//! Phoenix.Tracker in Rust.
