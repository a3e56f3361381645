//! Replacing a small state file whole: a temporary file beside it, written and fsynced, renamed
//! over it, and the directory fsynced, so a crash or power cut leaves the old file or the new
//! one, never half of either. The keys file, adoptions, the stage record and the executed-id
//! log all go through it.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` whole (creating its directory). `private`: the file is created
/// with mode 0600 (keys), so it is never readable by others, not even for a moment.
pub fn replace(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        if private {
            // A temporary file left by an older run keeps its mode: set it again.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = dir {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_private_files_are_0600() {
        let dir = std::env::temp_dir().join(format!("rk-durable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("keys.json");
        replace(&path, b"one\n", true).expect("first");
        replace(&path, b"two\n", true).expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"two\n");
        assert!(!dir.join("sub").join("keys.json.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
