//! The `router-hash` plugin library: exports [`registry_router_hash::HashRouter`] as the router stage.
//!
//! The implementation lives in an ordinary library crate so that tests and benchmarks can link
//! it statically; this crate only exports it (a library exports exactly one root module, so two
//! plugins exporting from their implementation crates could not be linked into one binary).

registry_abi::export_plugin! {
    name: "router-hash",
    router: registry_router_hash::HashRouter,
}
