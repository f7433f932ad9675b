//! The testkit's own tests: its suites against its reference doubles, the suites' power to catch
//! broken implementations, and the pipeline driven by the doubles.

mod conformance;
mod pipeline;
mod suites_catch;
