//! [`ScratchDir`]: a fresh directory under the system's temporary directory, removed on drop,
//! where the storage suite and the library runner put the data directories they build stages on.
//!
//! Written here rather than taken from `tempfile`: this crate ships in the `registry` binary
//! (`registry plugins check` runs the suites), and a dependency kept for tests has no business
//! there; a directory with a unique name is a few lines of `std`. The name joins the process id,
//! a per-process counter and the time, and the directory is made with `create_dir`, which fails
//! if it exists, so two runs (or two threads) never share one: a name already taken is retried
//! with the next count.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// How many names are tried before giving up: only a directory filling with our own names, or
/// one we cannot write to at all, gets that far.
const ATTEMPTS: u32 = 100;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory of its own under [`std::env::temp_dir`], removed with all it holds on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates a new, empty directory.
    ///
    /// # Errors
    /// The error of the last `create_dir` tried, with the path in its message, when the
    /// temporary directory does not take a new directory.
    pub fn new() -> io::Result<ScratchDir> {
        ScratchDir::new_in(&std::env::temp_dir())
    }

    /// Creates a new, empty directory in `base`.
    ///
    /// # Errors
    /// As [`ScratchDir::new`].
    pub fn new_in(base: &Path) -> io::Result<ScratchDir> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!(
                "registry-conformance-{}-{}-{nanos}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let path = base.join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(ScratchDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some((path, e)),
                Err(e) => return Err(at(&path, &e)),
            }
        }
        Err(match last {
            Some((path, e)) => at(&path, &e),
            None => io::Error::other("no name was tried"),
        })
    }

    /// Where the directory is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `e`, saying which path it is about.
fn at(path: &Path, e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Nothing to do about a failure here; what is left is in the temporary directory.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_is_new_empty_and_gone_after_drop() {
        let a = ScratchDir::new().expect("a scratch directory");
        let b = ScratchDir::new().expect("another");
        assert_ne!(a.path(), b.path());
        assert!(a.path().starts_with(std::env::temp_dir()));
        assert_eq!(std::fs::read_dir(a.path()).expect("readable").count(), 0);
        std::fs::create_dir(a.path().join("shard-0")).expect("writable");
        std::fs::write(a.path().join("shard-0/data"), "x").expect("writable");
        let path = a.path().to_owned();
        drop(a);
        assert!(!path.exists());
        assert!(b.path().is_dir());
    }

    #[test]
    fn a_base_that_does_not_take_a_directory_is_an_error_naming_the_path() {
        let e = ScratchDir::new_in(Path::new("/nonexistent/base")).expect_err("no such base");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(
            e.to_string()
                .starts_with("cannot create /nonexistent/base/registry-conformance-"),
            "{e}"
        );
    }

    #[test]
    fn threads_get_a_directory_each() {
        let dirs: Vec<ScratchDir> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| ScratchDir::new().expect("a scratch directory")))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        let mut paths: Vec<&Path> = dirs.iter().map(ScratchDir::path).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 8);
    }
}
