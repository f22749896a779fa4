//! Placeholder until this application is built.

fn main() {}
