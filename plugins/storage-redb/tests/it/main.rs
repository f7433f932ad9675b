//! The storage conformance suite against `RedbStorage`, in process.

use registry_core::FromConfig;
use registry_storage_redb::{Config, RedbStorage};

#[test]
fn conforms_to_the_storage_contract() {
    registry_testkit::storage::check(&|setup| {
        Box::new(RedbStorage::from_config(Config::default(), setup).expect("open redb storage"))
    });
}
