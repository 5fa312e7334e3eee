//! One recorder per output folder: an exclusive `flock` on `<out_dir>/.download_highres.lock`.
//!
//! The lock belongs to the open file, so the kernel releases it when the process exits in any
//! way (including `kill -9`); a stale lock file left on disk therefore never blocks a restart.
//! While held, the file says who holds it (`pid=… host=… started=…`), and a second instance
//! refuses with that text. The file itself is never deleted (deleting it while another process
//! waits to open it would let two instances lock two different files).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the output folder.
pub const LOCK_FILE_NAME: &str = ".download_highres.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{} is locked by another download_highres ({holder}); refusing to write the same files", path.display())]
    Held { path: PathBuf, holder: String },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// An exclusive lock on an output folder, released on drop (or process exit).
#[derive(Debug)]
pub struct OutDirLock {
    path: PathBuf,
    _file: File,
}

impl OutDirLock {
    /// Creates `dir` if needed and locks it, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<OutDirLock, LockError> {
        let path = dir.join(LOCK_FILE_NAME);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match try_lock(&file) {
            Ok(true) => {}
            Ok(false) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    path,
                    holder: if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(e) => return Err(io_err(e)),
        }
        let text = format!(
            "pid={} host={} started={}\n",
            std::process::id(),
            hostname(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(io_err)?;
        Ok(OutDirLock { path, _file: file })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a valid, open descriptor owned by `file`.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

#[cfg(not(unix))]
fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(unix)]
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates when it fits.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(not(unix))]
fn hostname() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_naming_the_holder_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("out");
        let a = OutDirLock::acquire(&dir).unwrap();
        assert_eq!(a.path(), dir.join(LOCK_FILE_NAME));
        let text = std::fs::read_to_string(a.path()).unwrap();
        assert!(
            text.starts_with(&format!("pid={} host=", std::process::id())),
            "{text}"
        );
        // flock locks belong to the open file: a second open in the same process conflicts.
        match OutDirLock::acquire(&dir) {
            Err(LockError::Held { path, holder }) => {
                assert_eq!(path, dir.join(LOCK_FILE_NAME));
                assert!(holder.contains(&format!("pid={}", std::process::id())));
                assert!(holder.contains("started="));
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(a);
        let b = OutDirLock::acquire(&dir).unwrap();
        drop(b);
        assert!(dir.join(LOCK_FILE_NAME).exists(), "the file stays");
    }
}
