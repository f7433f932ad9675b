//! The stored form of an entry that the storage plugins share.
//!
//! - [`entry`]: the binary encoding of an entry with varint lengths, which the Redis storage
//!   has kept since its first format and both storages write in entry format 4;
//! - [`compress`]: configs compressed with zstd and dictionaries trained on them, which entry
//!   format 4 stores (docs/STORAGE.md has the measurements it was chosen by).
//!
//! A hand-written encoding keeps stored bytes independent of any serialization crate's format,
//! so a dependency upgrade can never make stored entries unreadable; golden-byte tests pin
//! every format.

pub mod compress;
pub mod entry;

pub use compress::{Dictionaries, Dictionary};
