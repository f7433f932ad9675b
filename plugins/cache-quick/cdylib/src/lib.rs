//! The `cache-quick` plugin library: exports [`registry_cache_quick::QuickCache`] as the cache
//! stage.
//!
//! The implementation lives in an ordinary library crate so that tests and benchmarks can link
//! it statically; this crate only exports it (a library exports exactly one root module, so two
//! plugins exporting from their implementation crates could not be linked into one binary).

registry_abi::export_plugin! {
    name: "cache-quick",
    cache: registry_cache_quick::QuickCache,
}
