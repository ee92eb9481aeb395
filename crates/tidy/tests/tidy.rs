//! Project-wide checks that run with `cargo test`: the crate layering of DESIGN.md, the
//! formatting, and the `//!` header every source file opens with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Which workspace crates each crate may use (normal and build dependencies), and which
/// outside crates it must not. Dependencies point down: see DESIGN.md and STYLE.md rule 1.
fn allowed() -> BTreeMap<&'static str, (&'static [&'static str], &'static [&'static str])> {
    const NO_RUNTIME: &[&str] = &["tokio", "anyhow", "openraft"];
    BTreeMap::from([
        (
            "strom-proto",
            (
                &[][..],
                &["tokio", "anyhow", "openraft", "memmap2", "libc"][..],
            ),
        ),
        ("strom-metrics", (&[][..], NO_RUNTIME)),
        (
            "strom-log",
            (&["strom-proto", "strom-metrics"][..], NO_RUNTIME),
        ),
        (
            "strom-raft",
            (&["strom-proto", "strom-log"][..], &["anyhow"][..]),
        ),
        (
            "strom-meta",
            (&["strom-proto"][..], &["anyhow", "tokio"][..]),
        ),
        (
            "strom-client",
            (&["strom-proto"][..], &["anyhow", "openraft"][..]),
        ),
        (
            "strom-broker",
            (
                &[
                    "strom-proto",
                    "strom-log",
                    "strom-meta",
                    "strom-client",
                    "strom-raft",
                    "strom-metrics",
                ][..],
                &["anyhow"][..],
            ),
        ),
        (
            "strom",
            (
                &["strom-proto", "strom-broker", "strom-client"][..],
                &[][..],
            ),
        ),
        (
            "strom-testkit",
            (&["strom-proto"][..], &["anyhow", "tokio"][..]),
        ),
        ("tidy", (&[][..], &[][..])),
    ])
}

#[test]
fn crates_depend_only_downward() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let table = allowed();
    let mut problems = Vec::new();
    for package in meta["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        let Some((may_use, forbidden)) = table.get(name) else {
            problems.push(format!(
                "{name}: a new crate; add its allowed edges to tidy"
            ));
            continue;
        };
        for dep in package["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            if table.contains_key(dep_name) && !may_use.contains(&dep_name) {
                problems.push(format!("{name} -> {dep_name}: an edge the design forbids"));
            }
            if forbidden.contains(&dep_name) {
                problems.push(format!("{name} -> {dep_name}: not allowed in this crate"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering violations:\n{}",
        problems.join("\n")
    );
}

#[test]
fn code_is_formatted() {
    // rustup cannot download components on the test machines: without rustfmt the suite
    // still runs, and says so.
    let has_rustfmt = Command::new(env!("CARGO"))
        .args(["fmt", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_rustfmt {
        eprintln!("rustfmt is not installed: formatting NOT checked");
        return;
    }
    let out = Command::new(env!("CARGO"))
        .args(["fmt", "--all", "--", "--check"])
        .current_dir(workspace_root())
        .output()
        .expect("running cargo fmt");
    assert!(
        out.status.success(),
        "cargo fmt --all would change files:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn every_source_file_says_what_it_owns() {
    let mut missing = Vec::new();
    let crates = workspace_root().join("crates");
    let mut stack = vec![crates];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                if !text.trim_start().starts_with("//!") {
                    missing.push(path.display().to_string());
                }
                // tests/<dir>/mod.rs is the one place mod.rs stays: a tests/<dir>.rs would be
                // compiled as a test crate of its own.
                let shared_test_module = path
                    .parent()
                    .and_then(|d| d.parent())
                    .is_some_and(|d| d.ends_with("tests"));
                if path.file_name().is_some_and(|n| n == "mod.rs") && !shared_test_module {
                    missing.push(format!(
                        "{}: use foo.rs beside foo/, not mod.rs",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files without a //! header:\n{}",
        missing.join("\n")
    );
}
