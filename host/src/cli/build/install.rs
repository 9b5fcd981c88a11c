//! Installs a pinned toolchain once under the toolchain directory, safely
//! when several `courier build`s start at once.
//!
//! A toolchain is installed into a temporary directory beside its own, under
//! an exclusive lock on a file of its own, and renamed into place only when
//! complete (holding the file that marks it installed), so a build that
//! waits for the lock finds it installed, and an install killed halfway
//! leaves nothing that looks installed: the next build removes what it left
//! and installs again, as it does with a directory an older Courier left
//! without its mark.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};

use super::{BuildError, io_error, remove_dir};

/// The file a toolchain's directory holds once it is installed.
const INSTALLED: &str = "installed";

/// The directory `<toolchains>/<package>-<version>`, filled by `install`
/// (given an empty directory to fill, which is then moved there) unless it
/// is already installed.
pub(super) fn installed(
    toolchains: &Path,
    package: &str,
    version: &str,
    install: impl FnOnce(&Path) -> Result<(), BuildError>,
) -> Result<PathBuf, BuildError> {
    let name = format!("{package}-{version}");
    let dir = toolchains.join(&name);
    if dir.join(INSTALLED).is_file() {
        return Ok(dir);
    }
    fs::create_dir_all(toolchains).map_err(io_error(toolchains))?;
    let lock = toolchains.join(format!(".{name}.lock"));
    let _held = lock_file(&lock, &format!("{package} {version}"))?;
    if dir.join(INSTALLED).is_file() {
        return Ok(dir);
    }
    let partial = toolchains.join(format!(".{name}.partial"));
    remove_dir(&partial)?;
    remove_dir(&dir)?;
    fs::create_dir(&partial).map_err(io_error(&partial))?;
    eprintln!("installing {package} {version} into {}", dir.display());
    if let Err(error) = install(&partial) {
        let _ = fs::remove_dir_all(&partial);
        return Err(error);
    }
    let mark = partial.join(INSTALLED);
    fs::write(&mark, "").map_err(io_error(&mark))?;
    fs::rename(&partial, &dir).map_err(io_error(&dir))?;
    Ok(dir)
}

/// `path` opened and locked exclusively (released when the file is closed,
/// or the process ends); says on stderr when another process holds it.
fn lock_file(path: &Path, what: &str) -> Result<File, BuildError> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            eprintln!(
                "waiting for another courier to install {what} (lock {})",
                path.display()
            );
            file.lock().map_err(io_error(path))?;
        }
        Err(TryLockError::Error(error)) => return Err(io_error(path)(error)),
    }
    Ok(file)
}
