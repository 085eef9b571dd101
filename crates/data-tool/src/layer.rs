//! Image layers: building the adapter layer (files under `data/` in a gzip-compressed tar)
//! and unpacking the `data/` part of any layer.

use std::{
    fs::{self, File},
    io::{self, BufReader, BufWriter, Read, Seek},
    path::{Component, Path, PathBuf},
};

use flate2::{Compression, read::MultiGzDecoder, write::GzEncoder};
use tar::{Archive, Builder, EntryType, Header};
use tempfile::NamedTempFile;

use crate::digest::HashingWriter;

/// The directory of the image filesystem the adapter files live in (§7.7 copies `/data/*`).
pub const DATA_DIR: &str = "data";

/// Whiteout prefix of the OCI layer format: `.wh.<name>` deletes `<name>` of lower layers.
const WHITEOUT: &str = ".wh.";
/// Opaque-directory marker: lower layers' entries of this directory are hidden.
const OPAQUE: &str = ".wh..wh..opq";

/// A layer written to a temporary file.
#[derive(Debug)]
pub struct BuiltLayer {
    /// The compressed layer; deleted when dropped.
    pub file: NamedTempFile,
    /// Digest of the compressed bytes: the blob digest.
    pub digest: String,
    /// Digest of the uncompressed tar: the config's `diff_id`.
    pub diff_id: String,
    /// Compressed size.
    pub size: u64,
}

/// Writes `files` (name in the image, path on disk) as `data/<name>` entries, in the order
/// given. Owners, modes and times are fixed so the same adapter gives the same digest.
pub fn build(files: &[(String, PathBuf)]) -> io::Result<BuiltLayer> {
    let file = NamedTempFile::new()?;
    let blob = HashingWriter::new(BufWriter::new(file.as_file().try_clone()?));
    // Weights hardly compress; the fast level saves most of the time for little size.
    let gzip = GzEncoder::new(blob, Compression::fast());
    let mut tar = Builder::new(HashingWriter::new(gzip));

    tar.append_data(
        &mut header(EntryType::Directory, 0o755, 0),
        format!("{DATA_DIR}/"),
        io::empty(),
    )?;
    for (name, path) in files {
        let source = File::open(path)?;
        let len = source.metadata()?.len();
        let mut header = header(EntryType::Regular, 0o644, len);
        tar.append_data(&mut header, format!("{DATA_DIR}/{name}"), source.take(len))?;
    }

    let (gzip, diff_id, _) = tar.into_inner()?.finish();
    let (blob, digest, size) = gzip.finish()?.finish();
    blob.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()?;
    Ok(BuiltLayer {
        file,
        digest,
        diff_id,
        size,
    })
}

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// Copies the regular files under `data/` of a layer (gzip-compressed or plain tar) into
/// `dest`, applying the layer's whiteouts to what earlier layers put there.
pub fn extract_data(layer: &Path, dest: &Path) -> io::Result<()> {
    let mut file = File::open(layer)?;
    let mut magic = [0u8; 4];
    let read = file.read(&mut magic)?;
    file.rewind()?;
    let reader: Box<dyn Read> = match &magic[..read] {
        [0x1f, 0x8b, ..] => Box::new(MultiGzDecoder::new(BufReader::new(file))),
        [0x28, 0xb5, 0x2f, 0xfd] => {
            return Err(io::Error::other("zstd-compressed layers are not supported"));
        }
        _ => Box::new(BufReader::new(file)),
    };
    let mut archive = Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(relative) = data_path(&entry.path()?) else {
            continue;
        };
        let target = dest.join(&relative);
        let name = relative
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let parent = target.parent().unwrap_or(dest);
        if name == OPAQUE {
            clear_dir(parent)?;
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            remove_any(&parent.join(hidden))?;
        } else {
            match entry.header().entry_type() {
                EntryType::Regular | EntryType::Continuous => {
                    fs::create_dir_all(parent)?;
                    remove_any(&target)?;
                    io::copy(&mut entry, &mut File::create(&target)?)?;
                }
                EntryType::Directory => fs::create_dir_all(&target)?,
                other => {
                    tracing::debug!(path = %relative.display(), kind = ?other,
                        "Skipping non-regular layer entry");
                }
            }
        }
    }
    Ok(())
}

/// The part of a layer path below `data/`, when it is there and stays there.
fn data_path(path: &Path) -> Option<PathBuf> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir | Component::RootDir => {}
            // `..` could climb out of the destination.
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    match parts.split_first() {
        Some((first, rest)) if *first == DATA_DIR && !rest.is_empty() => {
            Some(rest.iter().collect())
        }
        _ => None,
    }
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

fn clear_dir(dir: &Path) -> io::Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => entries.try_for_each(|entry| entry.and_then(|e| remove_any(&e.path()))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Every regular file below `dir`, relative to it, sorted.
pub fn list_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in fs::read_dir(dir.join(&relative))? {
            let entry = entry?;
            let path = relative.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(layer: &Path) -> Vec<(String, Vec<u8>)> {
        let decoder = MultiGzDecoder::new(File::open(layer).unwrap());
        let mut archive = Archive::new(decoder);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mut body = Vec::new();
                e.read_to_end(&mut body).unwrap();
                (path, body)
            })
            .collect()
    }

    fn adapter_dir() -> (tempfile::TempDir, Vec<(String, PathBuf)>) {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for (name, body) in [
            ("adapter_config.json", "{}"),
            ("adapter_model.safetensors", "w"),
        ] {
            let path = dir.path().join(name);
            fs::write(&path, body).unwrap();
            files.push((name.to_owned(), path));
        }
        (dir, files)
    }

    #[test]
    fn the_adapter_layer_holds_the_files_under_data() {
        let (_dir, files) = adapter_dir();
        let layer = build(&files).unwrap();
        let names: Vec<_> = entries(layer.file.path())
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            names,
            [
                "data/",
                "data/adapter_config.json",
                "data/adapter_model.safetensors"
            ]
        );
        assert_ne!(layer.digest, layer.diff_id);
        assert_eq!(layer.size, layer.file.as_file().metadata().unwrap().len());
    }

    #[test]
    fn the_same_files_give_the_same_digests() {
        let (_dir, files) = adapter_dir();
        let first = build(&files).unwrap();
        let second = build(&files).unwrap();
        assert_eq!(
            (first.digest, first.diff_id),
            (second.digest, second.diff_id)
        );
    }

    #[test]
    fn only_paths_below_data_are_extracted() {
        assert_eq!(
            data_path(Path::new("./data/a/b")),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(data_path(Path::new("/data/x")), Some(PathBuf::from("x")));
        assert_eq!(data_path(Path::new("data/")), None);
        assert_eq!(data_path(Path::new("bin/sh")), None);
        assert_eq!(data_path(Path::new("data/../etc/passwd")), None);
    }

    #[test]
    fn whiteouts_remove_what_an_earlier_layer_extracted() {
        let dest = tempfile::tempdir().unwrap();
        let (_dir, files) = adapter_dir();
        extract_data(build(&files).unwrap().file.path(), dest.path()).unwrap();

        let upper = NamedTempFile::new().unwrap();
        let mut tar = Builder::new(upper.as_file().try_clone().unwrap());
        let mut hide = header(EntryType::Regular, 0o644, 0);
        tar.append_data(&mut hide, "data/.wh.adapter_config.json", io::empty())
            .unwrap();
        tar.into_inner().unwrap();
        extract_data(upper.path(), dest.path()).unwrap();

        let left = list_files(dest.path()).unwrap();
        assert_eq!(left, [PathBuf::from("adapter_model.safetensors")]);
    }
}
