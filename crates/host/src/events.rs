//! What a long operation tells its caller as it goes: the host never prints, so a front end
//! implements [`Events`] to show these its own way (a terminal's progress line, a server's log).

use registry_core::Damaged;

/// How far a long operation has got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Items processed so far.
    pub processed: u64,
    /// The fraction done, when it is known (a regular file's bytes read, or a known count).
    pub done: Option<f64>,
    /// What is counted, plural: `requests`, `records`, `entries`, `files`.
    pub unit: &'static str,
}

/// Called as an operation goes; every method does nothing unless implemented.
pub trait Events {
    /// Something a person should know that does not stop the operation (a registry made by
    /// an older version was brought up to date, a setting looks mistyped).
    fn warning(&mut self, message: &str) {
        let _ = message;
    }

    /// Work done so far; called as often as every item, so a front end throttles what it shows.
    /// `batch`, `scale-test`, `import`, `export`, `lint` and `stamp` report it.
    fn progress(&mut self, progress: Progress) {
        let _ = progress;
    }

    /// The operation is over (whether it succeeded or not): a progress line can be cleared.
    fn finished(&mut self) {}

    /// An entry that failed its integrity check, left out of what is served.
    fn damaged(&mut self, damaged: &Damaged) {
        let _ = damaged;
    }
}

/// Ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Events for Quiet {}
