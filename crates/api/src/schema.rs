//! Schema fragments the derived CRD schemas need beyond what schemars produces.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose fields the API server keeps as given (pod templates, volume sources).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true
    })
}
