//! The plugin boundary: the only crate that names `abi_stable`.
//!
//! It mirrors the `registry_core` stage traits as FFI-safe trait objects ([`module`]), defines
//! the root module a plugin library exports (a prefix type: the plugin's info plus one optional
//! constructor per stage, so one library may provide several stages), gives plugin authors
//! [`export_plugin!`] to export plain-Rust stage implementations in a few lines ([`export`]), and
//! gives the host the loader and the adapters back to the core traits ([`load`]).
//!
//! Design decision: stage calls are synchronous and batch-first (a slice in, a host-owned `RVec`
//! out) so the boundary costs once per batch and plugins never touch the host's async runtime
//! (a plugin has its own copy of every runtime and global). Panics are caught inside the plugin
//! and returned as errors: unwinding across the boundary would abort the host. Keeping every
//! abi_stable type here means a move to another ABI crate touches this crate only.
//!
//! Inputs cross as borrowed views of the host's values ([`ffi::FfiEntryRef`] and its kin), so a
//! string the host sends is copied once, by the plugin into the owned value its trait takes;
//! outputs cross owned, since they outlive the call.
//!
//! Rejected: passing entries as one serialized buffer. It would save the per-field conversions,
//! but lose the layout checks abi_stable does at load, which are what turn a stale plugin into a
//! clear "rebuild the plugin" error rather than memory corruption.

// `#[sabi_trait]` expands to impls the lint flags.
#![allow(non_local_definitions)]

pub mod export;
pub mod ffi;
pub mod linked;
pub mod load;
pub mod module;
pub mod trust;

pub use ffi::FfiError;
pub use module::{ABI_VERSION, PluginInfo, PluginMod, PluginModRef};

/// Items [`export_plugin!`] expands to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use ::abi_stable::export_root_module;
    pub use ::abi_stable::std_types::{RResult, RStr};
}

/// What abi_stable's `#[export_root_module]` expands to names by absolute path
/// (`::abi_stable::library::…`). [`export_plugin!`] brings this crate into the plugin crate's
/// root under the name `abi_stable`, so those paths lead here, and a plugin crate needs no
/// dependency on abi_stable of its own; not part of the API.
#[doc(hidden)]
pub mod library {
    pub use ::abi_stable::library::*;
}
