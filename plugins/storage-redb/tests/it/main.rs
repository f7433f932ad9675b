//! The storage conformance suite against `RedbStorage`, in process.

use registry_core::{FromConfig, Storage};
use registry_storage_redb::{Config, RedbStorage};

#[test]
fn conforms_to_the_storage_contract() {
    registry_testkit::storage::check(&|setup| {
        RedbStorage::from_config(Config::default(), setup).map(|s| Box::new(s) as Box<dyn Storage>)
    });
}

/// The same with a fingerprint merge after every second registration, so every check of the
/// suite also runs across merged and pending fingerprints.
#[test]
fn conforms_with_frequent_fingerprint_merges() {
    registry_testkit::storage::check(&|setup| {
        let config = Config {
            fingerprint_merge: 2,
            ..Config::default()
        };
        RedbStorage::from_config(config, setup).map(|s| Box::new(s) as Box<dyn Storage>)
    });
}
