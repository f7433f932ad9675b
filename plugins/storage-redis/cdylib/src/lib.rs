//! The `storage-redis` plugin library: exports [`registry_storage_redis::RedisStorage`] as the
//! storage stage.
//!
//! The implementation lives in an ordinary library crate so that tests and benchmarks can link
//! it statically; this crate only exports it (a library exports exactly one root module, so two
//! plugins exporting from their implementation crates could not be linked into one binary).

registry_abi::export_plugin! {
    name: "storage-redis",
    storage: registry_storage_redis::RedisStorage,
}
