//! The `generator-default` plugin library: exports [`registry_generator_default::DefaultGenerator`] as the generator stage.
//!
//! The implementation lives in an ordinary library crate so that tests and benchmarks can link
//! it statically; this crate only exports it (a library exports exactly one root module, so two
//! plugins exporting from their implementation crates could not be linked into one binary).

registry_abi::export_plugin! {
    name: "generator-default",
    generator: registry_generator_default::DefaultGenerator,
}
