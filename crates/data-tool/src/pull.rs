//! `pull`: fetches an image and copies the files under its `/data` into a directory, to check
//! what a tuning Job pushed (and to test `push`).

use std::path::PathBuf;

use tempfile::NamedTempFile;

use crate::{
    Error,
    cli::PullArgs,
    error::io_error,
    layer,
    reference::{ImageRef, Platform},
    registry::{Registry, RegistryConfig, pull_scope},
};

/// What `pull` needs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The image.
    pub image: ImageRef,
    /// Where the files under `/data` go.
    pub dest: PathBuf,
    /// Platform picked from a multi-platform image.
    pub platform: Platform,
    /// Registry access.
    pub registry: RegistryConfig,
}

impl TryFrom<PullArgs> for Options {
    type Error = Error;

    fn try_from(args: PullArgs) -> Result<Self, Error> {
        Ok(Options {
            image: ImageRef::parse(&args.image)?,
            dest: args.dest,
            platform: platform(args.registry.platform.as_deref())?,
            registry: RegistryConfig::try_from(&args.registry)?,
        })
    }
}

/// The `--platform` value, or this machine's platform.
pub fn platform(flag: Option<&str>) -> Result<Platform, Error> {
    flag.map(Platform::parse)
        .transpose()
        .map(|p| p.unwrap_or_else(Platform::current))
}

/// The outcome of a pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    /// Digest of the manifest pulled.
    pub digest: String,
    /// Files now in the destination, relative to it.
    pub files: Vec<PathBuf>,
}

/// Downloads each layer in order and unpacks its `data/` entries into the destination.
pub async fn run(opts: &Options) -> Result<Pulled, Error> {
    let scopes = vec![pull_scope(&opts.image.repository)];
    let registry = Registry::connect(&opts.registry, &opts.image, scopes)?;
    let (manifest, digest) = registry.resolve(&opts.image, &opts.platform).await?;
    let dest_text = opts.dest.display().to_string();
    std::fs::create_dir_all(&opts.dest).map_err(io_error(format!("creating {dest_text}")))?;
    for layer in &manifest.layers {
        let blob = NamedTempFile::new().map_err(io_error("creating a temporary file"))?;
        registry
            .fetch_blob(&opts.image.repository, &layer.digest, blob.path())
            .await?;
        let dest = opts.dest.clone();
        let what = format!("unpacking layer {} into {dest_text}", layer.digest);
        tokio::task::spawn_blocking(move || layer::extract_data(blob.path(), &dest))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|unpacked| unpacked)
            .map_err(io_error(what))?;
    }
    let files = layer::list_files(&opts.dest).map_err(io_error(format!("listing {dest_text}")))?;
    tracing::info!(image = %opts.image, digest = %digest, files = files.len(), dest = %dest_text,
        "Pulled image data");
    Ok(Pulled { digest, files })
}
