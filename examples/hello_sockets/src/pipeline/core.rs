//! The pipeline's pure parts: the producer's bounded buffer and the consumer pool's demand, as
//! GenStage and ConsumerSupervisor count them.
//!
//! The pool asks for `max_demand` items at first. Each item runs in its own worker; once
//! `max_demand - min_demand` workers have finished, it asks for that many more. So at most
//! `max_demand` workers run at once, and the buffer is taken from in batches of
//! `max_demand - min_demand` once the pool is busy.

use std::collections::VecDeque;

/// The buffer was full; the item was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline's buffer is full ({capacity} items waiting); try again later")]
pub struct Full {
    /// The buffer's capacity.
    pub capacity: usize,
}

/// Items waiting for a worker, first in first out, at most `capacity` of them.
#[derive(Debug)]
pub struct Buffer<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> Buffer<T> {
    /// An empty buffer holding up to `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Buffer {
            items: VecDeque::new(),
            capacity,
        }
    }

    /// Queues `item`, or refuses it when the buffer is full (the item is given back).
    pub fn push(&mut self, item: T) -> Result<(), (Full, T)> {
        if self.items.len() >= self.capacity {
            return Err((
                Full {
                    capacity: self.capacity,
                },
                item,
            ));
        }
        self.items.push_back(item);
        Ok(())
    }

    /// Takes up to `n` items, oldest first.
    pub fn take(&mut self, n: usize) -> Vec<T> {
        let n = n.min(self.items.len());
        self.items.drain(..n).collect()
    }

    /// Whether nothing waits.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The consumer pool's demand bookkeeping.
#[derive(Debug)]
pub struct Demand {
    max_demand: usize,
    min_demand: usize,
    /// Items asked for and not received yet.
    open: usize,
    /// Workers running.
    running: usize,
    /// Workers finished since the last time demand was renewed.
    finished: usize,
}

impl Demand {
    /// A pool that asks for `max_demand` items at first and renews its demand whenever
    /// `max_demand - min_demand` workers have finished (`min_demand < max_demand`).
    pub fn new(max_demand: usize, min_demand: usize) -> Self {
        assert!(
            min_demand < max_demand,
            "min_demand must be below max_demand"
        );
        Demand {
            max_demand,
            min_demand,
            open: max_demand,
            running: 0,
            finished: 0,
        }
    }

    /// How many items the pool may receive now.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Workers running.
    #[cfg(test)]
    pub fn running(&self) -> usize {
        self.running
    }

    /// `n` items arrived (at most [`open`](Demand::open)), each now in a worker.
    pub fn received(&mut self, n: usize) {
        debug_assert!(n <= self.open);
        self.open -= n.min(self.open);
        self.running += n;
    }

    /// One worker finished; the demand is renewed in a batch when enough have.
    pub fn finished(&mut self) {
        self.running = self.running.saturating_sub(1);
        self.finished += 1;
        let batch = self.max_demand - self.min_demand;
        if self.finished >= batch {
            self.open += self.finished;
            self.finished = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buffer_refuses_and_gives_the_item_back() {
        let mut buffer = Buffer::new(2);
        assert!(buffer.push(1).is_ok());
        assert!(buffer.push(2).is_ok());
        assert_eq!(buffer.push(3), Err((Full { capacity: 2 }, 3)));
        assert_eq!(buffer.take(5), vec![1, 2]);
        assert!(buffer.is_empty());
        assert!(buffer.push(3).is_ok());
    }

    #[test]
    fn never_more_than_max_demand_workers_and_demand_renews_in_batches() {
        let mut demand = Demand::new(10, 5);
        assert_eq!(demand.open(), 10);
        demand.received(10);
        assert_eq!((demand.open(), demand.running()), (0, 10));
        for _ in 0..4 {
            demand.finished();
        }
        assert_eq!(demand.open(), 0, "renewed only after max - min finished");
        demand.finished();
        assert_eq!((demand.open(), demand.running()), (5, 5));
        demand.received(5);
        assert_eq!(demand.running(), 10);
    }

    /// Whatever the order of arrivals and completions, running never exceeds max_demand and
    /// every item is eventually received.
    #[test]
    fn running_is_bounded_and_everything_drains() {
        let mut demand = Demand::new(10, 5);
        let mut buffer = Buffer::new(10_000);
        for n in 0..53 {
            buffer.push(n).expect("room");
        }
        let mut done = 0;
        let mut step = 0u64;
        while done < 53 {
            let batch = buffer.take(demand.open());
            demand.received(batch.len());
            assert!(demand.running() <= 10);
            step = step
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let finish = (step >> 60) as usize % (demand.running() + 1);
            for _ in 0..finish.max(usize::from(demand.open() == 0 && demand.running() > 0)) {
                demand.finished();
                done += 1;
            }
        }
        assert!(buffer.is_empty());
    }
}
