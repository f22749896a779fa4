//! The local ports shoppers connect from.
//!
//! Binding a socket to port 0 makes the kernel search its port range for one that is free on
//! that address; with tens of thousands of the bench's own connections on few addresses, that
//! search was most of the bench's kernel time per join. The bench hands out ports itself
//! instead, in turn on each source address, from a slice of [`FIRST`]..=[`LAST`] that is this
//! process's alone (worker `w` of `W` gets the `w`-th of `W` slices), so that the kernel only
//! checks the one port it is given. A port found in use anyway (by another program) is skipped.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out.
pub const FIRST: u16 = 10_000;
/// The highest port handed out.
pub const LAST: u16 = 65_000;

/// Ports for one process (see the module docs).
#[derive(Debug)]
pub struct Ports {
    next: Vec<(IpAddr, AtomicU32)>,
    first: u32,
    span: u32,
}

impl Ports {
    /// The `slice`-th of `slices` equal parts of the range, on each of `sources`.
    pub fn new(sources: &[IpAddr], slice: u32, slices: u32) -> Ports {
        let slices = slices.max(1);
        let span = (u32::from(LAST) - u32::from(FIRST) + 1) / slices;
        Ports {
            next: sources.iter().map(|&s| (s, AtomicU32::new(0))).collect(),
            first: u32::from(FIRST) + span * slice.min(slices - 1),
            span: span.max(1),
        }
    }

    /// The next port to try on `source` (wrapping around this process's slice).
    pub fn next(&self, source: IpAddr) -> u16 {
        let n = self
            .next
            .iter()
            .find(|(s, _)| *s == source)
            .map_or(0, |(_, n)| n.fetch_add(1, Ordering::Relaxed));
        u16::try_from(self.first + n % self.span).unwrap_or(LAST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn workers_get_disjoint_slices_and_each_source_counts_on_its_own() {
        let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let first = Ports::new(&[a, b], 0, 2);
        let second = Ports::new(&[a, b], 1, 2);
        assert_eq!(first.next(a), FIRST);
        assert_eq!(first.next(a), FIRST + 1);
        assert_eq!(first.next(b), FIRST);
        let other = second.next(a);
        assert!(other > FIRST + 20_000, "{other}");
        for _ in 0..30_000 {
            assert!((FIRST..other).contains(&first.next(a)));
            assert!(second.next(b) <= LAST);
        }
    }
}
