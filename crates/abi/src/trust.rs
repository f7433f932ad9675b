//! Which plugin libraries the host may load.
//!
//! Loading a library runs its code (its constructors run inside `dlopen`, before any check of
//! ours), and `registry.toml` is a file a repository carries: untrusted input. So a library
//! loads only from a place the user chose, in the spirit of git's `safe.directory`, direnv's
//! `allow` and sshd's `StrictModes`:
//!
//! - the directory of the `registry` executable (the plugins installed with it), or
//! - a path the user trusted: a library file, or a directory whose libraries (at any depth) may
//!   load. Trusted paths come from the user's own configuration directory (`registry trust
//!   PATH` records them there) or from the `REGISTRY_TRUST` environment variable (for CI), never
//!   from a repository.
//!
//! Wherever it is, a library is refused when it is not a regular file (a FIFO named as a library
//! would block the loader forever), when it or a directory between it and the place that makes
//! it trusted is writable by its group or by others, or is owned by another user than the one
//! running the registry (root aside): someone else could then swap the code that is run.
//!
//! Paths are compared after resolving symbolic links, so a link cannot smuggle a library into a
//! trusted place, and a link from a repository to an installed plugin loads that plugin.

use std::path::{Path, PathBuf};

/// Where libraries may load from.
/// Why a library may not be loaded; each reason is one line saying what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Outside the registry's own plugin directory and every path the user trusted.
    Untrusted(String),
    /// In a trusted place, but someone other than the user (or root) could change the library
    /// or a directory leading to it.
    Unsafe(String),
    /// Not a regular file, or it cannot be read.
    Unreadable(String),
}

impl Refusal {
    /// The reason, one line.
    pub fn reason(&self) -> &str {
        match self {
            Refusal::Untrusted(r) | Refusal::Unsafe(r) | Refusal::Unreadable(r) => r,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for Refusal {}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// Directories whose libraries load without being trusted: the executable's own.
    pub own: Vec<PathBuf>,
    /// Paths the user trusted: library files, or directories whose libraries load.
    pub trusted: Vec<PathBuf>,
}

impl Trust {
    /// Checks that `library` may be loaded: it exists, is a regular file in a trusted place,
    /// and nobody but its owner (the user, or root) can change it or the directories leading
    /// to it from that place.
    ///
    /// # Errors
    /// Why not, and what to do.
    pub fn check(&self, library: &Path) -> Result<(), Refusal> {
        let real = real_path(library)?;
        let root = self.root_of(&real).ok_or_else(|| {
            Refusal::Untrusted(format!(
                "not loaded: it is not in the registry's own plugin directory ({}) nor in a \
                 trusted path; a configuration file cannot make the registry run a library. If \
                 you trust this one, run `registry trust {}` (or add it to REGISTRY_TRUST)",
                self.own
                    .first()
                    .map_or_else(|| "unknown".to_owned(), |d| d.display().to_string()),
                real.display()
            ))
        })?;
        check_safe(&real, Some(&root))
    }

    /// The trusted directory (or a trusted file's directory) that contains `real`, if any.
    fn root_of(&self, real: &Path) -> Option<PathBuf> {
        let parent = real.parent()?;
        for own in &self.own {
            if let Ok(own) = own.canonicalize()
                && parent == own
            {
                return Some(own);
            }
        }
        for trusted in &self.trusted {
            let Ok(t) = trusted.canonicalize() else {
                continue;
            };
            if t == real {
                return Some(parent.to_owned());
            }
            if t.is_dir() && real.starts_with(&t) {
                return Some(t);
            }
        }
        None
    }
}

/// The library's path with every symbolic link resolved, once it is known to be a regular
/// file.
fn real_path(library: &Path) -> Result<PathBuf, Refusal> {
    let real = library
        .canonicalize()
        .map_err(|e| Refusal::Unreadable(format!("cannot resolve the path: {}", reason(&e))))?;
    let meta = std::fs::metadata(&real)
        .map_err(|e| Refusal::Unreadable(format!("cannot read it: {}", reason(&e))))?;
    if !meta.is_file() {
        return Err(Refusal::Unreadable(format!(
            "{} is not a regular file, so it is not a library",
            real.display()
        )));
    }
    Ok(real)
}

/// Checks that a library file, and every directory from its own up to `root` (inclusive; only
/// its own directory without a root), are owned by the user or root and writable by nobody
/// else. [`Trust::check`] calls it for trusted libraries; `registry plugins check` for the
/// library the user names on its command line.
///
/// # Errors
/// The file or directory at fault and what is wrong with it.
pub fn check_safe(library: &Path, root: Option<&Path>) -> Result<(), Refusal> {
    let real = real_path(library)?;
    let refuse = |why: String| Refusal::Unsafe(format!("not loaded: {why}"));
    check_one(&real, "library").map_err(refuse)?;
    let mut dir = real.parent();
    while let Some(d) = dir {
        check_one(d, "directory").map_err(refuse)?;
        if root.is_none_or(|r| d == r) {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

/// Checks that only the user (or root) can change a file: for the user's own list of trusted
/// paths, which would otherwise be a way in.
///
/// # Errors
/// One line naming the file and what is wrong with it.
pub fn check_owned(path: &Path) -> Result<(), String> {
    check_one(path, "file")?;
    match path.parent() {
        Some(dir) => check_one(dir, "directory"),
        None => Ok(()),
    }
}

#[cfg(unix)]
fn check_one(path: &Path, what: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {what} {}: {}", path.display(), reason(&e)))?;
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    judge(path, what, meta.uid(), meta.mode(), me)
}

/// The verdict on one file or directory, from its owner and mode and the user running.
fn judge(path: &Path, what: &str, owner: u32, mode: u32, me: u32) -> Result<(), String> {
    if owner != me && owner != 0 {
        return Err(format!(
            "{what} {} is owned by another user (uid {owner}), who could change it",
            path.display()
        ));
    }
    if mode & 0o022 != 0 {
        let who = if mode & 0o002 != 0 {
            "everyone"
        } else {
            "its group"
        };
        return Err(format!(
            "{what} {} is writable by {who} (mode {:o}), who could change it; remove that \
             permission (chmod go-w)",
            path.display(),
            mode & 0o7777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_one(_: &Path, _: &str) -> Result<(), String> {
    Ok(())
}

fn reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    text.split(" (os error")
        .next()
        .unwrap_or(&text)
        .to_lowercase()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn lib(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, b"\x7fELF").expect("writable temp dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn only_the_own_directory_and_trusted_paths_load() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let own = tmp.path().join("bin");
        let repo = tmp.path().join("repo");
        for d in [&own, &repo] {
            std::fs::create_dir(d).expect("mkdir");
            chmod(d, 0o755);
        }
        chmod(tmp.path(), 0o755);
        let installed = lib(&own, "libcache_moka.so");
        let planted = lib(&repo, "libx.so");
        let mut trust = Trust {
            own: vec![own.clone()],
            trusted: vec![],
        };
        assert_eq!(trust.check(&installed), Ok(()));
        let refused = trust.check(&planted).expect_err("a repository's library");
        assert!(
            matches!(&refused, Refusal::Untrusted(r) if r.contains("registry trust")),
            "{refused}"
        );
        // A link in the repository to an installed plugin loads that plugin, and a link in the
        // plugin directory to the repository's library does not launder it.
        let link = repo.join("libcache.so");
        std::os::unix::fs::symlink(&installed, &link).expect("symlink");
        assert_eq!(trust.check(&link), Ok(()));
        let laundered = own.join("liblaundered.so");
        std::os::unix::fs::symlink(&planted, &laundered).expect("symlink");
        assert!(trust.check(&laundered).is_err());
        // Trusting the file, or its directory, lets it load.
        trust.trusted = vec![planted.clone()];
        assert_eq!(trust.check(&planted), Ok(()));
        trust.trusted = vec![repo.clone()];
        assert_eq!(trust.check(&planted), Ok(()));
    }

    #[test]
    fn owners_other_than_the_user_or_root_are_refused() {
        let p = Path::new("/x/liba.so");
        assert_eq!(judge(p, "library", 1000, 0o100755, 1000), Ok(()));
        assert_eq!(judge(p, "library", 0, 0o100755, 1000), Ok(()));
        let e = judge(p, "library", 1001, 0o100755, 1000).expect_err("another user's");
        assert!(e.contains("owned by another user (uid 1001)"), "{e}");
        assert!(judge(p, "directory", 1000, 0o40757, 1000).is_err());
    }

    #[test]
    fn writable_or_foreign_libraries_and_non_files_are_refused() {
        let tmp = tempfile::tempdir().expect("temp dir");
        chmod(tmp.path(), 0o755);
        let trust = Trust {
            own: vec![tmp.path().to_owned()],
            trusted: vec![],
        };
        let l = lib(tmp.path(), "libw.so");
        chmod(&l, 0o777);
        let e = trust.check(&l).expect_err("world-writable");
        assert!(e.to_string().contains("writable by everyone"), "{e}");
        chmod(&l, 0o775);
        let e = trust.check(&l).expect_err("group-writable");
        assert!(e.to_string().contains("writable by its group"), "{e}");
        chmod(&l, 0o755);
        chmod(tmp.path(), 0o777);
        let e = trust.check(&l).expect_err("world-writable directory");
        assert!(e.to_string().contains("directory"), "{e}");
        chmod(tmp.path(), 0o755);
        assert_eq!(trust.check(&l), Ok(()));
        let fifo = tmp.path().join("libfifo.so");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8 temp path")).expect("no nul");
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = trust.check(&fifo).expect_err("a FIFO");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = trust
            .check(&tmp.path().join("libmissing.so"))
            .expect_err("missing");
        assert!(e.to_string().contains("no such file"), "{e}");
    }
}
