//! A profile opens, migrates, reports itself and closes; a closed handle
//! refuses work. Guards against a profile that cannot be reopened or that
//! keeps answering after close.

mod common;
use common::TestProfile;
use serde_json::json;

#[test]
fn reopens_after_close_with_same_schema() {
    let t = TestProfile::new();
    let info = t.ok("profile.info", json!({}));
    assert_eq!(
        info["schema_version"],
        json!(hydra_core::db::LATEST_SCHEMA_VERSION)
    );
    t.close();
    t.err("meta.version", json!({}), "closed");
    let again = hydra_core::Profile::open(hydra_core::OpenOptions::new(t.dir.path())).unwrap();
    let v = common::call(&again, "meta.version", json!({})).unwrap();
    assert_eq!(v["schema_version"], info["schema_version"]);
    assert_eq!(v["sqlite_version"], json!(rusqlite_version()));
}

fn rusqlite_version() -> String {
    hydra_core::meta::version(&open_tmp(), Default::default())
        .unwrap()
        .sqlite_version
}

fn open_tmp() -> hydra_core::Profile {
    let dir = tempfile::tempdir().unwrap().keep();
    hydra_core::Profile::open(hydra_core::OpenOptions::new(dir)).unwrap()
}
