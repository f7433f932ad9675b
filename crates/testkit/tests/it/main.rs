//! The testkit's own tests: its suites against its reference doubles, the suites' power to catch
//! broken implementations, the pipeline driven by the doubles, and (feature `library`) the suites
//! through the built plugin libraries.

mod conformance;
#[cfg(feature = "library")]
mod layout;
mod library;
mod pipeline;
mod suites_catch;
