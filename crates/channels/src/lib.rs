//! Phoenix Channels server.
