//! Buffers kept from one batch to the next.
//!
//! Rendering and predicting write through scratch buffers that grow to the size of an entry.
//! Made afresh for each batch, they would be allocated and grown again each time, which is most
//! of the cost of a batch of one; a pool hands each batch the buffers an earlier batch left, one
//! set per batch running at the same time.

use std::sync::{Mutex, PoisonError};

/// Most buffer sets kept: more batches than this at once are rare, and the rest are dropped.
const MAX_KEPT: usize = 64;

/// A pool of reusable values of `T`.
#[derive(Debug, Default)]
pub(crate) struct Pool<T>(Mutex<Vec<T>>);

impl<T: Default> Pool<T> {
    /// A value left by an earlier batch, or a new one.
    pub(crate) fn take(&self) -> T {
        // A panic while the lock was held cannot leave the `Vec` half-changed.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    /// Returns a value for a later batch.
    pub(crate) fn put(&self, value: T) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < MAX_KEPT {
            kept.push(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_and_the_pool_is_bounded() {
        let pool: Pool<Vec<u8>> = Pool::default();
        let mut v = pool.take();
        v.reserve(100);
        pool.put(v);
        assert!(pool.take().capacity() >= 100, "the buffer is reused");
        for _ in 0..MAX_KEPT + 10 {
            pool.put(Vec::with_capacity(1));
        }
        let kept = pool.0.lock().expect("not poisoned").len();
        assert_eq!(kept, MAX_KEPT);
    }
}
