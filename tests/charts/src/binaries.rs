//! The controller binaries that tests run as processes, brought up to date on first use.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use crate::{Error, repo_root};

/// The binaries' directory, or why there is none; decided once per test process.
static BIN_DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The path of controller binary `name` (`workspace-controller` or `gpu-provisioner`).
///
/// With `KAITO_BIN_DIR` set the binaries are taken from there as they are. Otherwise both
/// are built with cargo into the target directory of this test executable, so that a test
/// never runs a binary older than the code (an up-to-date build takes about a second).
pub fn controller_binary(name: &str) -> Result<PathBuf, Error> {
    let failed = |reason: String| Error::Binary {
        name: name.to_owned(),
        reason,
    };
    let dir = BIN_DIR.get_or_init(bin_dir).clone().map_err(failed)?;
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(failed(format!("{} does not exist", path.display())))
    }
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("KAITO_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the test: {e}"))?;
    // Test executables live in target/<profile>/deps; the binaries in target/<profile>.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is not in a cargo target directory", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command
        .current_dir(repo_root())
        .args(["build", "--quiet", "--locked"])
        .args(["--bin", "workspace-controller", "--bin", "gpu-provisioner"])
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        command.arg("--release");
    }
    let out = command
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(profile_dir.to_path_buf())
}
