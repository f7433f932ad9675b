//! [`Turns`]: ids numbered in the order batches were given, when several run at once.
//!
//! A bulk load keeps several batches in flight, so that one batch's predictions overlap another's
//! commit. In a dense registry every number comes from one sequence per prefix, so without an
//! order the batches would take numbers in whatever order they reach allocation, and a file's
//! entries would not be numbered in the file's order. Each batch takes a [`Turn`] when it is
//! handed out, in input order; [`crate::Pipeline::add_in_turn`] waits for the batch's turn
//! just before allocating (which is quick: the predictions and checks before it still overlap),
//! and passes it on right after. A batch that allocates nothing (every request already
//! registered, or rejected) passes its turn when it is done, without waiting.
//!
//! Waiting cannot deadlock as long as every earlier turn is held by a batch that runs: a caller
//! hands turns out in the order it starts the batches, and runs them on a pool that starts
//! queued work first in, first out (the host's batch runtime does).

use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// The turns of the batches of one bulk load; see the module documentation.
#[derive(Debug, Default)]
pub struct Turns {
    state: Mutex<State>,
    turned: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// The next turn [`Turns::take`] hands out.
    issued: u64,
    /// The turn whose batch may allocate now.
    current: u64,
    /// Turns passed before every earlier one was.
    passed: BTreeSet<u64>,
}

impl Turns {
    pub fn new() -> Arc<Turns> {
        Arc::default()
    }

    /// The next turn, after every turn taken before.
    pub fn take(self: &Arc<Self>) -> Turn {
        let mut state = self.state();
        let number = state.issued;
        state.issued += 1;
        Turn {
            turns: Arc::clone(self),
            number,
            passed: false,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is changed only by whole statements that cannot panic midway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One batch's place in [`Turns`]; passed on when dropped, so a batch that fails anywhere never
/// holds up the ones after it.
#[derive(Debug)]
pub struct Turn {
    turns: Arc<Turns>,
    number: u64,
    passed: bool,
}

impl Turn {
    /// Blocks until every earlier turn has passed.
    pub(crate) fn wait(&self) {
        let mut state = self.turns.state();
        while state.current < self.number {
            state = self
                .turns
                .turned
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Lets the next turn go (once every earlier one has passed too).
    pub(crate) fn pass(&mut self) {
        if std::mem::replace(&mut self.passed, true) {
            return;
        }
        let mut state = self.turns.state();
        state.passed.insert(self.number);
        loop {
            let current = state.current;
            if !state.passed.remove(&current) {
                break;
            }
            state.current += 1;
        }
        drop(state);
        self.turns.turned.notify_all();
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.pass();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn turns_go_in_the_order_taken_whatever_order_the_batches_arrive() {
        let turns = Turns::new();
        let taken: Vec<Turn> = (0..8).map(|_| turns.take()).collect();
        let order = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = taken
            .into_iter()
            .rev()
            .map(|mut turn| {
                let order = Arc::clone(&order);
                let next = Arc::clone(&next);
                std::thread::spawn(move || {
                    turn.wait();
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    order.lock().expect("lock").push((turn.number, n));
                    turn.pass();
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let order = order.lock().expect("lock");
        assert_eq!(order.len(), 8);
        assert!(order.iter().all(|&(turn, n)| turn == n), "{order:?}");
    }

    #[test]
    fn a_dropped_turn_passes_and_a_later_one_may_pass_first() {
        let turns = Turns::new();
        let first = turns.take();
        let mut second = turns.take();
        let third = turns.take();
        // The second passes before its turn (it allocated nothing); the third still waits for
        // the first.
        second.pass();
        assert_eq!(turns.state().current, 0);
        drop(first);
        assert_eq!(turns.state().current, 2);
        third.wait();
        drop(third);
        assert_eq!(turns.state().current, 3);
        assert!(turns.state().passed.is_empty());
    }
}
