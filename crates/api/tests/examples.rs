//! Every Workspace in `examples/` parses, passes validation and survives a YAML round trip.
// Test code fails loudly, helpers included.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use kaito_api::{Cloud, Workspace, validation};

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("examples dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_example_deserializes_validates_and_round_trips() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    assert!(files.len() >= 11, "examples found: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        let mut ws: Workspace = yaml_serde::from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
        ws.metadata.namespace = Some("default".into());
        let ctx = validation::Context::new(Cloud::Azure);
        if let Err(e) = validation::validate_create(&ws, &ctx) {
            panic!("{} is denied: {e}", file.display());
        }
        let again: Workspace =
            yaml_serde::from_str(&yaml_serde::to_string(&ws).expect("serializes")).expect("parses");
        assert_eq!(ws, again, "{} changes on a round trip", file.display());
    }
}
