//! OCI and Docker manifest, index and descriptor documents, and their media types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::reference::Platform;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, gzip-compressed tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, plain tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker layer, gzip-compressed tar.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Everything a manifest request accepts, single-platform and multi-platform.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// A reference to content by digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the content is.
    pub media_type: String,
    /// `sha256:...` of the content.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The platform of an index entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `linux`, ...
    pub os: String,
    /// `v8`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A single-platform image manifest (OCI or Docker schema 2: the same shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// Filesystem layers, base first.
    pub layers: Vec<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A multi-platform index (OCI index or Docker manifest list).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// One manifest per platform (and sometimes attestations).
    pub manifests: Vec<Descriptor>,
}

/// What a manifest request returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// A single-platform manifest.
    Manifest(Box<Manifest>),
    /// A multi-platform index.
    Index(Index),
}

/// Tells the document kind from the media type in the body, else the Content-Type header.
pub fn parse_manifest(body: &[u8], content_type: Option<&str>) -> Result<Fetched, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("manifest is not JSON: {e}"))?;
    let media_type = value
        .get("mediaType")
        .and_then(|m| m.as_str())
        .or(content_type)
        .map(|m| m.split(';').next().unwrap_or(m).trim().to_owned());
    let is_index = match media_type.as_deref() {
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        // OCI lets the media type be absent; the fields tell.
        _ => value.get("manifests").is_some(),
    };
    if is_index {
        serde_json::from_value(value)
            .map(Fetched::Index)
            .map_err(|e| format!("invalid image index: {e}"))
    } else if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(2) {
        serde_json::from_value(value)
            .map(|m| Fetched::Manifest(Box::new(m)))
            .map_err(|e| format!("invalid image manifest: {e}"))
    } else {
        Err(format!(
            "unsupported manifest type {} (schema 1 manifests are not supported)",
            media_type.as_deref().unwrap_or("(none)")
        ))
    }
}

impl Index {
    /// The entry for a platform, or an error listing what the index has.
    pub fn select(&self, platform: &Platform) -> Result<&Descriptor, String> {
        let found = self.manifests.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
        });
        found.ok_or_else(|| {
            let offered: Vec<String> = self
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect();
            format!(
                "no {platform} image in the index (it has {})",
                offered.join(", ")
            )
        })
    }
}

/// The OCI media type for a layer of either family: the bytes are the same.
pub fn oci_layer_type(media_type: &str) -> &str {
    match media_type {
        DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar" => OCI_LAYER_TAR,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(media_type: &str, platform: Option<(&str, &str, Option<&str>)>) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: crate::digest::sha256(media_type.as_bytes()),
            size: 1,
            platform: platform.map(|(os, arch, variant)| DescriptorPlatform {
                os: os.to_owned(),
                architecture: arch.to_owned(),
                variant: variant.map(str::to_owned),
            }),
            annotations: None,
        }
    }

    #[test]
    fn the_matching_platform_is_picked_and_attestations_are_ignored() {
        let index = Index {
            manifests: vec![
                descriptor("a", Some(("unknown", "unknown", None))),
                descriptor("b", Some(("linux", "arm64", Some("v8")))),
                descriptor("c", Some(("linux", "amd64", None))),
            ],
        };
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(index.select(&amd).unwrap().media_type, "c");
        let arm = Platform::parse("linux/arm64").unwrap();
        assert_eq!(index.select(&arm).unwrap().media_type, "b");
        let err = index
            .select(&Platform::parse("linux/s390x").unwrap())
            .unwrap_err();
        assert!(err.contains("linux/arm64/v8"), "{err}");
    }

    #[test]
    fn documents_are_told_apart_by_media_type_or_shape() {
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"x",
            "digest":"sha256:0","size":1}},"layers":[]}}"#
        );
        assert!(matches!(
            parse_manifest(manifest.as_bytes(), None),
            Ok(Fetched::Manifest(_))
        ));
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            parse_manifest(index.as_bytes(), None),
            Ok(Fetched::Index(_))
        ));
        let v1 = r#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(
            parse_manifest(v1.as_bytes(), None)
                .unwrap_err()
                .contains("schema 1")
        );
    }

    #[test]
    fn docker_layer_types_map_to_their_oci_names() {
        assert_eq!(oci_layer_type(DOCKER_LAYER_GZIP), OCI_LAYER_GZIP);
        assert_eq!(oci_layer_type(OCI_LAYER_GZIP), OCI_LAYER_GZIP);
    }
}
