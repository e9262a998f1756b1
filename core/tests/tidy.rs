//! House rule as code: the domain core does no I/O, so nothing it depends on, directly or
//! transitively, is a gRPC, protobuf, storage, TLS or async-runtime crate.

use std::collections::{BTreeMap, BTreeSet};

const FORBIDDEN: &[&str] =
    &["tokio", "tonic", "prost", "rocksdb", "librocksdb-sys", "rustls", "hyper", "h2", "mio", "workspace-hack"];

#[test]
fn core_depends_on_no_io_crate() {
    let lock_path = manifest_dir().join("../Cargo.lock");
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(lock_path).expect("read Cargo.lock")).expect("parse");
    let packages = lock.get("package").and_then(|p| p.as_array()).expect("packages");
    // name -> dependency names (a lock entry names a dependency as "name" or "name version").
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in packages {
        let name = p.get("name").and_then(|n| n.as_str()).expect("name").to_string();
        let list = p
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|d| {
                d.iter().filter_map(|x| x.as_str()).map(|x| x.split(' ').next().unwrap_or(x).to_string()).collect()
            })
            .unwrap_or_default();
        deps.entry(name).or_default().extend::<Vec<String>>(list);
    }
    // Walk normal and dev dependencies alike: the lock does not tell them apart, so this is
    // stricter than the rule (it also keeps the core's tests free of I/O crates).
    let mut seen = BTreeSet::new();
    let mut stack = vec!["exchange-core".to_string()];
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(children) = deps.get(&name) {
            stack.extend(children.iter().cloned());
        }
    }
    let bad: Vec<&&str> = FORBIDDEN.iter().filter(|f| seen.contains(**f)).collect();
    assert!(bad.is_empty(), "exchange-core reaches I/O crates {bad:?}: keep it pure");
    assert!(seen.len() > 10, "the walk found the core's dependencies");
}

/// This package's folder, read when the test runs (cargo sets it): the compile-time value
/// would name whichever clone first built this binary, the target folder being shared.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
