//! The registry as a library: everything a front end (the `registry` command line, a server, the
//! benchmarks) needs beyond the pipeline of `registry-core`, written once.
//!
//! - [`settings`]: `registry.toml` and the environment, read and checked.
//! - [`assemble`]: the stages a command needs, from plugin libraries or linked into the program.
//! - [`Registry`]: a registry opened (or created) with the stages a command [`Needs`].
//! - [`batch`]: bulk registration (`batch`, `scale-test`) and `stats`, with their reports.
//! - [`events`]: what a long operation tells its caller as it goes.
//! - [`transfer`]: export and import, every entry with its history.
//! - [`trust`]: the plugin libraries the user allows.
//! - [`lint`]: header lines found in files and checked against the schema and the registry.
//! - [`stamp`]: registering files that lack a header and writing it into them.
//! - [`text`]: how text from outside is shown on a terminal.
//! - [`input`]: bounded reading of input files, and outputs that must not be inputs.
//! - [`Error`]: one line for a person, and whether the user's input is at fault.
//!
//! Design decision: the host never prints. It returns values (summaries, reports, warnings) and
//! calls the caller back for what happens as it goes (a failed line, progress), so that every
//! front end shows the same facts its own way. Rejected: keeping this logic in the command-line
//! crate, which every other front end would then have had to copy.

pub mod assemble;
pub mod audit;
pub mod batch;
pub mod diff;
mod error;
pub mod events;
pub mod input;
pub mod lint;
pub mod registry;
pub mod requests;
pub mod settings;
pub mod stamp;
pub mod text;
pub mod tokens;
pub mod transfer;
pub mod trust;

pub use error::{Error, Location, io_reason};
pub use registry::{Needs, Registry};
pub use settings::Settings;
