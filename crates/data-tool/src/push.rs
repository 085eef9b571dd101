//! `push`: publishes the adapter the trainer wrote as an OCI image whose filesystem holds
//! it under `/data/`, on top of a base image with a shell so the inference adapter init
//! container can copy it out (contract §7.7 and §9.6).

use std::{collections::BTreeMap, path::PathBuf};

use serde_json::{Value, json};
use tempfile::NamedTempFile;

use crate::{
    Error,
    cli::PushArgs,
    error::io_error,
    layer::{self, BuiltLayer},
    reference::{ImageRef, Platform},
    registry::{
        BlobSource, Registry, RegistryConfig, RegistryError,
        manifest::{
            Descriptor, Manifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, oci_layer_type,
        },
        pull_scope, push_scope,
    },
};

/// The files an adapter cannot do without; both must exist and be non-empty.
pub const REQUIRED_FILES: [&str; 2] = ["adapter_config.json", "adapter_model.safetensors"];

/// Annotation naming the base image (OCI image spec, pre-defined annotation keys).
const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// Annotation with the base image's manifest digest.
const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// What `push` needs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The trainer's output directory.
    pub dir: PathBuf,
    /// Target image; a missing tag means `latest`.
    pub image: ImageRef,
    /// Image to build on, or none for an image with the adapter layer only.
    pub base: Option<ImageRef>,
    /// Platform picked from a multi-platform base, and written into a base-less config.
    pub platform: Platform,
    /// Registry access.
    pub registry: RegistryConfig,
}

impl TryFrom<PushArgs> for Options {
    type Error = Error;

    fn try_from(args: PushArgs) -> Result<Self, Error> {
        let image = ImageRef::parse(&args.image)?;
        if image.digest.is_some() {
            return Err(Error::InvalidArgument(format!(
                "image {:?}: a pushed image needs a tag, not a digest",
                args.image
            )));
        }
        let base = match args.base_image.trim() {
            none if none.eq_ignore_ascii_case("none") => None,
            base => Some(ImageRef::parse(base)?),
        };
        Ok(Options {
            dir: args.dir,
            image,
            base,
            platform: crate::pull::platform(args.registry.platform.as_deref())?,
            registry: RegistryConfig::try_from(&args.registry)?,
        })
    }
}

/// The outcome of a push.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// Digest of the pushed manifest.
    pub digest: String,
    /// The pushed manifest.
    pub manifest: Manifest,
}

/// A base image as the target will reference it.
#[derive(Clone, Debug)]
pub struct Base {
    /// Where it came from.
    pub image: ImageRef,
    /// Its manifest digest (for the platform picked).
    pub digest: String,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its config document.
    pub config: Value,
}

/// The adapter layer's identity, as the config and manifest record it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterLayer {
    /// Blob digest.
    pub digest: String,
    /// Uncompressed digest.
    pub diff_id: String,
    /// Blob size.
    pub size: u64,
}

/// Checks the adapter, builds its layer, brings the base layers into the target
/// repository, then uploads the layer, the config and the manifest.
pub async fn run(opts: &Options) -> Result<Pushed, Error> {
    let files = adapter_files(&opts.dir)?;
    let layer = build_layer(files).await?;
    let adapter = AdapterLayer {
        digest: layer.digest.clone(),
        diff_id: layer.diff_id.clone(),
        size: layer.size,
    };
    tracing::info!(digest = %adapter.digest, bytes = adapter.size, "Built adapter layer");

    let target = Registry::connect(&opts.registry, &opts.image, scopes(opts))?;
    let base = match &opts.base {
        Some(base) => Some(bring_base(&target, base, opts).await?),
        None => None,
    };

    let repo = &opts.image.repository;
    let source = BlobSource::File(layer.file.path());
    upload_missing(&target, repo, &adapter.digest, adapter.size, source).await?;
    let (config, manifest) = compose(base.as_ref(), &adapter, &opts.platform)?;
    let config_size = config.len() as u64;
    upload_missing(
        &target,
        repo,
        &manifest.config.digest,
        config_size,
        BlobSource::Bytes(&config),
    )
    .await?;
    let body = serde_json::to_vec(&manifest).map_err(|e| protocol("encoding the manifest", e))?;
    let tag = opts.image.tag.as_deref().unwrap_or("latest");
    let digest = target.put_manifest(repo, tag, OCI_MANIFEST, &body).await?;
    tracing::info!(image = %opts.image, digest = %digest, layers = manifest.layers.len(),
        "Pushed adapter image");
    Ok(Pushed { digest, manifest })
}

fn scopes(opts: &Options) -> Vec<String> {
    let mut scopes = vec![push_scope(&opts.image.repository)];
    // A base in the same registry is mounted, which needs pull access to its repository.
    if let Some(base) = opts
        .base
        .as_ref()
        .filter(|b| b.api_host() == opts.image.api_host())
    {
        scopes.push(pull_scope(&base.repository));
    }
    scopes
}

/// The files to push: every regular file at the top of the results directory, the two
/// adapter files required. Subdirectories (checkpoints) stay behind.
pub fn adapter_files(dir: &std::path::Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let missing = |path: PathBuf, problem: &str| Error::AdapterMissing {
        path,
        problem: problem.to_owned(),
    };
    if !dir.is_dir() {
        return Err(missing(dir.to_path_buf(), "is not a directory"));
    }
    for name in REQUIRED_FILES {
        let path = dir.join(name);
        match std::fs::metadata(&path) {
            Err(_) => return Err(missing(path, "is missing")),
            Ok(meta) if !meta.is_file() => return Err(missing(path, "is not a file")),
            Ok(meta) if meta.len() == 0 => return Err(missing(path, "is empty")),
            Ok(_) => {}
        }
    }
    let config_path = dir.join(REQUIRED_FILES[0]);
    let config = std::fs::read(&config_path).map_err(io_error("reading the adapter config"))?;
    if serde_json::from_slice::<Value>(&config).is_err() {
        return Err(missing(config_path, "is not valid JSON"));
    }

    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(io_error(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_error(format!("listing {}", dir.display())))?;
        let path = entry.path();
        match entry.file_name().into_string() {
            Ok(name) if path.is_file() => files.push((name, path)),
            Ok(name) => tracing::info!(entry = %name, "Leaving out what is not a file"),
            Err(name) => tracing::warn!(entry = ?name, "Leaving out a file with a non-UTF-8 name"),
        }
    }
    files.sort();
    Ok(files)
}

async fn build_layer(files: Vec<(String, PathBuf)>) -> Result<BuiltLayer, Error> {
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    tracing::info!(files = ?names, "Packing adapter files under /data");
    // Compressing hundreds of megabytes is blocking work.
    tokio::task::spawn_blocking(move || layer::build(&files))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|built| built)
        .map_err(io_error("building the adapter layer"))
}

/// Fetches the base manifest and config, and makes sure every base layer is in the target
/// repository: mounted within one registry, copied between two.
async fn bring_base(target: &Registry, base: &ImageRef, opts: &Options) -> Result<Base, Error> {
    let same_registry = base.api_host() == opts.image.api_host();
    let other;
    let source = if same_registry {
        target
    } else {
        other = Registry::connect(&opts.registry, base, vec![pull_scope(&base.repository)])?;
        &other
    };
    let (manifest, digest) = source.resolve(base, &opts.platform).await?;
    let config = source
        .fetch_blob_bytes(&base.repository, &manifest.config.digest)
        .await?;
    let config: Value = serde_json::from_slice(&config)
        .map_err(|e| protocol(&format!("reading the config of {base}"), e))?;

    let repo = &opts.image.repository;
    for layer in &manifest.layers {
        if target.blob_exists(repo, &layer.digest).await? {
            continue;
        }
        if same_registry
            && target
                .mount_blob(repo, &layer.digest, &base.repository)
                .await?
        {
            continue;
        }
        let copy = NamedTempFile::new().map_err(io_error("creating a temporary file"))?;
        let size = source
            .fetch_blob(&base.repository, &layer.digest, copy.path())
            .await?;
        target
            .upload_blob(repo, &layer.digest, size, BlobSource::File(copy.path()))
            .await?;
    }
    tracing::info!(base = %base, digest = %digest, layers = manifest.layers.len(),
        same_registry, "Base image layers in place");
    Ok(Base {
        image: base.clone(),
        digest,
        manifest,
        config,
    })
}

async fn upload_missing(
    target: &Registry,
    repo: &str,
    digest: &str,
    size: u64,
    source: BlobSource<'_>,
) -> Result<(), Error> {
    if !target.blob_exists(repo, digest).await? {
        target.upload_blob(repo, digest, size, source).await?;
    }
    Ok(())
}

/// The image config and manifest: the base's layers in their order, the adapter layer
/// last. Returns the config bytes; the manifest refers to them by digest.
pub fn compose(
    base: Option<&Base>,
    adapter: &AdapterLayer,
    platform: &Platform,
) -> Result<(Vec<u8>, Manifest), Error> {
    let mut config = match base {
        Some(base) => base.config.clone(),
        None => empty_config(platform),
    };
    let object = config
        .as_object_mut()
        .ok_or_else(|| protocol("reading the base config", "it is not a JSON object"))?;
    let rootfs = object
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    match rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
        Some(diff_ids) => diff_ids.push(json!(adapter.diff_id)),
        None => {
            return Err(protocol(
                "reading the base config",
                "rootfs.diff_ids is missing",
            ));
        }
    }
    // History entries line up with layers; add ours only where the base keeps a history.
    if let Some(history) = object.get_mut("history").and_then(Value::as_array_mut) {
        history.push(json!({
            "created_by": "kaito-data push",
            "comment": "adapter files under /data",
        }));
    }
    let config = serde_json::to_vec(&config).map_err(|e| protocol("encoding the config", e))?;

    let mut layers: Vec<Descriptor> = base.map(|b| b.manifest.layers.clone()).unwrap_or_default();
    for layer in &mut layers {
        // The bytes are the same; the OCI manifest wants OCI names for them.
        layer.media_type = oci_layer_type(&layer.media_type).to_owned();
    }
    layers.push(descriptor(OCI_LAYER_GZIP, &adapter.digest, adapter.size));
    let annotations = base.map(|b| {
        BTreeMap::from([
            (BASE_NAME.to_owned(), b.image.to_string()),
            (BASE_DIGEST.to_owned(), b.digest.clone()),
        ])
    });
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        config: descriptor(
            OCI_CONFIG,
            &crate::digest::sha256(&config),
            config.len() as u64,
        ),
        layers,
        annotations,
    };
    Ok((config, manifest))
}

fn empty_config(platform: &Platform) -> Value {
    let mut config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    });
    if let (Some(variant), Some(object)) = (&platform.variant, config.as_object_mut()) {
        object.insert("variant".to_owned(), json!(variant));
    }
    config
}

fn descriptor(media_type: &str, digest: &str, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: digest.to_owned(),
        size,
        platform: None,
        annotations: None,
    }
}

fn protocol(what: &str, detail: impl ToString) -> Error {
    Error::Registry(RegistryError::Protocol {
        what: what.to_owned(),
        detail: detail.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::manifest::DOCKER_LAYER_GZIP;

    fn adapter() -> AdapterLayer {
        AdapterLayer {
            digest: crate::digest::sha256(b"layer"),
            diff_id: crate::digest::sha256(b"tar"),
            size: 5,
        }
    }

    fn busybox_like() -> Base {
        let layer = descriptor(DOCKER_LAYER_GZIP, &crate::digest::sha256(b"busybox"), 7);
        Base {
            image: ImageRef::parse("busybox:latest").unwrap(),
            digest: crate::digest::sha256(b"manifest"),
            manifest: Manifest {
                schema_version: 2,
                media_type: None,
                config: descriptor(OCI_CONFIG, &crate::digest::sha256(b"c"), 1),
                layers: vec![layer],
                annotations: None,
            },
            config: json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:base"]},
                "history": [{"created_by": "base"}],
            }),
        }
    }

    #[test]
    fn the_adapter_layer_goes_on_top_of_the_base_layers() {
        let base = busybox_like();
        let platform = Platform::parse("linux/amd64").unwrap();
        let (config, manifest) = compose(Some(&base), &adapter(), &platform).unwrap();
        let digests: Vec<_> = manifest.layers.iter().map(|l| l.digest.as_str()).collect();
        assert_eq!(
            digests,
            [base.manifest.layers[0].digest.as_str(), &adapter().digest]
        );
        assert!(
            manifest
                .layers
                .iter()
                .all(|l| l.media_type == OCI_LAYER_GZIP)
        );

        let config: Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"],
            json!(["sha256:base", adapter().diff_id])
        );
        assert_eq!(config["history"].as_array().unwrap().len(), 2);
        assert_eq!(config["config"]["Cmd"], json!(["sh"]));
        let annotations = manifest.annotations.unwrap();
        assert_eq!(annotations[BASE_NAME], "docker.io/library/busybox:latest");
        assert_eq!(annotations[BASE_DIGEST], base.digest);
    }

    #[test]
    fn without_a_base_the_image_has_the_adapter_layer_only() {
        let platform = Platform::parse("linux/arm64/v8").unwrap();
        let (config, manifest) = compose(None, &adapter(), &platform).unwrap();
        assert_eq!(manifest.layers.len(), 1);
        assert_eq!(manifest.config.digest, crate::digest::sha256(&config));
        assert_eq!(manifest.annotations, None);
        let config: Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(config["variant"], "v8");
        assert_eq!(config["rootfs"]["diff_ids"], json!([adapter().diff_id]));
    }

    #[test]
    fn missing_or_empty_adapter_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("adapter_config.json"), "{}").unwrap();
        let err = adapter_files(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("adapter_model.safetensors is missing"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 3);

        std::fs::write(dir.path().join("adapter_model.safetensors"), "").unwrap();
        let err = adapter_files(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("adapter_model.safetensors is empty"),
            "{err}"
        );
    }

    #[test]
    fn top_level_files_are_pushed_and_directories_left_out() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "adapter_model.safetensors",
            "adapter_config.json",
            "README.md",
        ] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        std::fs::create_dir(dir.path().join("checkpoint-10")).unwrap();
        let names: Vec<_> = adapter_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(
            names,
            [
                "README.md",
                "adapter_config.json",
                "adapter_model.safetensors"
            ]
        );
    }
}
