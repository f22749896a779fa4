//! Topic publish/subscribe.
