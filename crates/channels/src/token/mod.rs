//! Phoenix.Token.
