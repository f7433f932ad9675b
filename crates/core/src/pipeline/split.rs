//! One batch's CPU work spread over two cores when the batch runs alone.
//!
//! With several batches in flight (`registry batch`, `registry scale-test`), every core already
//! has one, and splitting them would only add threads. With one (`registry stamp` of a tree,
//! `registry import` of requests, one `add` call of many requests, the server's group committer
//! when a group reaches [`MIN_SPLIT`]), the other cores sit idle while it renders, hashes and
//! validates. So `add` runs those steps of a batch of at least
//! [`MIN_SPLIT`] requests as two halves at once, the second on a scoped thread, whenever
//! it is the only batch in the pipeline and the machine has more than one core. The halves'
//! results are put back in batch order (a validator's problems renumbered), so what `add`
//! returns does not depend on whether it split: a generator renders the same bytes for the same
//! draft whatever the batch (its contract, PLUGINS.md), a validator checks each item on its own,
//! and callers already cut their input into batches of any size.
//!
//! A scoped thread costs some tens of microseconds to start and to warm up (its allocator arena,
//! a stage's buffers kept per thread), which a step must outweigh: the default generator's
//! keyword prediction, about 0.3 ms per 1,000 requests, measured slower split (0.27 against 0.38
//! µs per request), so prediction is not split. `stage_times` (`benches/examples`) measures a
//! batch's steps (docs/PERFORMANCE.md).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::Pipeline;
use crate::error::{Problem, StageResult};

/// The smallest batch whose steps are split: below it, starting a thread costs a noticeable
/// share of a step.
pub(super) const MIN_SPLIT: usize = 256;

/// Counts a batch in [`Pipeline::add`] while it lives.
pub(super) struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    pub(super) fn enter(count: &'a AtomicUsize) -> InFlight<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pipeline {
    /// Whether a batch of `n` new requests splits its steps: it is the only batch in `add`, and
    /// there is a core to spare.
    pub(super) fn splits(&self, n: usize) -> bool {
        n >= MIN_SPLIT && self.cores > 1 && self.in_flight.load(Ordering::Relaxed) == 1
    }
}

/// Calls `call` on `items`, or, when `split`, on each half of them at once, appending to `out`
/// what the first half pushed, then what the second did. `call` pushes one output per item, in
/// order (configs, hashes): a half that pushes a wrong count leaves the second
/// half's outputs out, so the caller's count check fails rather than pairing outputs with the
/// wrong items. Errors are the first half's, else the second's.
pub(super) fn halves<T: Sync, O: Send>(
    split: bool,
    items: &[T],
    out: &mut Vec<O>,
    call: impl Fn(&[T], &mut Vec<O>) -> StageResult<()> + Sync,
) -> StageResult<()> {
    let start = out.len();
    match in_two(split, items, out, call)? {
        Some((first, rest)) if out.len() - start == first => out.extend(rest),
        _ => {}
    }
    Ok(())
}

/// [`halves`] for a validator's problems: any number per item, each naming its item's index in
/// what the validator was given, so the second half's are renumbered after the first half's.
pub(super) fn halves_of_problems<T: Sync>(
    split: bool,
    items: &[T],
    out: &mut Vec<Problem>,
    call: impl Fn(&[T], &mut Vec<Problem>) -> StageResult<()> + Sync,
) -> StageResult<()> {
    if let Some((first, mut rest)) = in_two(split, items, out, call)? {
        rest.iter_mut().for_each(|p| p.item += first);
        out.extend(rest);
    }
    Ok(())
}

/// Calls `call` on all of `items` (`None`), or on each half at once: the first half's outputs
/// in `out`, and the first half's length with the second half's outputs returned.
fn in_two<T: Sync, O: Send>(
    split: bool,
    items: &[T],
    out: &mut Vec<O>,
    call: impl Fn(&[T], &mut Vec<O>) -> StageResult<()> + Sync,
) -> StageResult<Option<(usize, Vec<O>)>> {
    if !split || items.len() < 2 {
        return call(items, out).map(|()| None);
    }
    let (first, second) = items.split_at(items.len() / 2);
    let mut rest = Vec::with_capacity(second.len());
    let (ours, theirs) = std::thread::scope(|s| {
        let theirs = s.spawn(|| call(second, &mut rest));
        (call(first, out), theirs.join())
    });
    ours?;
    match theirs {
        Ok(result) => result?,
        // A stage's panic is caught where the stage is called; this one is the pipeline's own.
        Err(panic) => std::panic::resume_unwind(panic),
    }
    Ok(Some((first.len(), rest)))
}
