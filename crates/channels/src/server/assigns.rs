//! [`Assigns`]: what a socket's `connect` decided about a connection, read by its channels.
//!
//! Apart from the `Socket` trait because the channels' [`Context`](super::Context) hands it out.

use std::any::Any;
use std::sync::Arc;

/// Per-connection data a socket's `connect` decided on (a user id, say), readable by every channel
/// of the connection.
#[derive(Clone, Default)]
pub struct Assigns(Option<Arc<dyn Any + Send + Sync>>);

impl Assigns {
    /// Nothing assigned.
    pub fn none() -> Self {
        Assigns(None)
    }

    /// Assigns `value`; channels read it back with [`get`](Assigns::get) and the same type.
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Assigns(Some(Arc::new(value)))
    }

    /// The assigned value, if one of type `T` was assigned.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.as_deref().and_then(|v| v.downcast_ref::<T>())
    }
}

impl std::fmt::Debug for Assigns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Assigns(..)"
        } else {
            "Assigns(none)"
        })
    }
}
