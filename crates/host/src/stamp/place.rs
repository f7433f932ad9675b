//! Where `stamp` may write, and writing there without being redirected.
//!
//! # The rule
//! A FILE argument names a directory (its path up to the last `/`, `.` for a bare name) and a
//! name in it. That directory is the user's: links on the way to it are followed, as any
//! command follows the path it is given. The file itself is resolved to its real path (every
//! link followed), which must lie inside the real path of that directory, in it or below it.
//! If it does not (`stamp link.conf` where `link.conf` points to `/etc/x.conf`, or to
//! `../other/x.conf`), the file is refused with a one-line error naming the link's target and
//! the directory, exit code 1, before anything is registered or written; naming the target
//! itself stamps it. A link that stays inside (`a.sh -> sub/a.sh`) is stamped the way one
//! expects of an editor: the target file's content is replaced and the link stays a link,
//! pointing where it pointed.
//!
//! Rejected alternatives: refusing every link would refuse the common "one file, two names"
//! layout inside a repository; resolving against the current directory or the repository root
//! would make the same command safe or not depending on where it runs.
//!
//! # Not redirected afterwards
//! Checking a path and later writing to it by name would let a link planted in between (at the
//! file, at a directory on the way, at the temporary file's name) redirect the write. So no
//! write goes by path. On Unix the given directory is opened, checked to be the directory that
//! was resolved (device and inode), and the directories from it down to the file's own are
//! opened one at a time relative to each other with `O_NOFOLLOW` and checked the same way;
//! the file is opened relative to its directory with `O_NOFOLLOW`, the temporary file is
//! created there with `O_CREAT | O_EXCL | O_NOFOLLOW` (a link planted at its name is an
//! existing name, and another name is tried), and it is renamed over the file with `renameat`
//! in that same directory. A rename replaces a directory entry and never writes through a
//! link, so whatever happens to the names meanwhile, the bytes land in the directory that was
//! checked, or not at all ("the file changed while it was being stamped"). Directories are
//! opened again, and checked again, for the write: no descriptor is held while the registry
//! works, so stamping thousands of files needs no more than a few.
//!
//! Elsewhere the same steps go by path, checking with `symlink_metadata` that no step is a
//! link: the rule holds, but a concurrent change of the tree is not guarded against.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use super::Failure;
use crate::error::io_reason;

/// What makes a directory the same one when it is opened again: device and inode on Unix.
#[cfg(unix)]
type FileId = (u64, u64);
#[cfg(not(unix))]
type FileId = ();

#[cfg(unix)]
fn file_id(meta: &fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(_meta: &fs::Metadata) -> FileId {}

/// The message when a name was moved or replaced between two steps.
const CHANGED: &str = "the file changed while it was being stamped";

/// A file to stamp, resolved and checked to be inside the directory it was named in.
#[derive(Debug)]
pub(super) struct Place {
    /// The directory the FILE was named in, as given (`.` for a bare name).
    anchor: PathBuf,
    anchor_id: FileId,
    /// The directories from the anchor down to the file's own, each a real directory.
    steps: Vec<OsString>,
    dir_id: FileId,
    /// The file's name in its directory.
    name: OsString,
    /// The file's real path, links resolved: for messages, and to tell two arguments naming
    /// one file apart.
    pub target: PathBuf,
}

impl Place {
    /// Resolves a FILE argument, checks it against the rule of this module and opens it for
    /// reading; returns the place, the open file and its metadata.
    ///
    /// # Errors
    /// A missing file, a dangling link, a directory or other non-regular file, a file outside
    /// the directory it was named in, a directory that cannot be opened.
    pub(super) fn resolve(given: &Path) -> Result<(Place, File, fs::Metadata), Failure> {
        let link = fs::symlink_metadata(given).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Failure::new("no such file"),
            _ => Failure::new(io_reason(&e)),
        })?;
        let is_link = link.file_type().is_symlink();
        let target = fs::canonicalize(given).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound if is_link => {
                Failure::new("the link points to a file that does not exist")
            }
            _ => Failure::new(io_reason(&e)),
        })?;
        let meta = fs::metadata(&target).map_err(|e| Failure::new(io_reason(&e)))?;
        check_kind(&meta)?;

        let anchor = match given.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        let anchor_real = fs::canonicalize(&anchor).map_err(|e| {
            Failure::new(format!(
                "cannot resolve its directory {}: {}",
                anchor.display(),
                io_reason(&e)
            ))
        })?;
        let outside = || {
            let how = if is_link {
                "a symbolic link to"
            } else {
                "resolves to"
            };
            Failure::new(format!(
                "{how} {}, outside its directory {}: stamp writes only inside the directory a file is named in (name the target to stamp it)",
                target.display(),
                anchor_real.display()
            ))
        };
        let inside = target.strip_prefix(&anchor_real).map_err(|_| outside())?;
        let mut parts: Vec<OsString> = Vec::new();
        for part in inside.components() {
            match part {
                Component::Normal(name) => parts.push(name.to_owned()),
                // A real path has no `.` nor `..`; anything else is not a name in the tree.
                _ => return Err(outside()),
            }
        }
        let Some(name) = parts.pop() else {
            return Err(outside());
        };
        let anchor_meta = fs::metadata(&anchor_real).map_err(|e| Failure::new(io_reason(&e)))?;

        let mut place = Place {
            anchor,
            anchor_id: file_id(&anchor_meta),
            steps: parts,
            dir_id: FileId::default(),
            name,
            target,
        };
        let dir = place.walk()?;
        place.dir_id = dir.id().map_err(|e| place.dir_error(&e))?;
        let (file, meta) = place.open_in(&dir)?;
        Ok((place, file, meta))
    }

    /// Opens the file's directory from the anchor again, checking that every directory on the
    /// way is the one resolved at first.
    fn pin(&self) -> Result<Dir, Failure> {
        let dir = self.walk()?;
        if dir.id().map_err(|e| self.dir_error(&e))? != self.dir_id {
            return Err(Failure::new(CHANGED));
        }
        Ok(dir)
    }

    /// Opens the anchor (following links: it is the user's path) and, from it, the steps
    /// down to the file's directory (following none).
    fn walk(&self) -> Result<Dir, Failure> {
        let mut dir = Dir::open(&self.anchor).map_err(|e| self.dir_error(&e))?;
        if dir.id().map_err(|e| self.dir_error(&e))? != self.anchor_id {
            return Err(Failure::new(CHANGED));
        }
        for step in &self.steps {
            dir = dir.child(step).map_err(|e| self.dir_error(&e))?;
        }
        Ok(dir)
    }

    fn dir_error(&self, e: &io::Error) -> Failure {
        if moved(e) {
            Failure::new(CHANGED)
        } else {
            let dir = self.target.parent().unwrap_or(&self.target);
            Failure::new(format!("cannot open {}: {}", dir.display(), io_reason(e)))
        }
    }

    /// Opens the file for reading in its directory, not following a link.
    fn open_in(&self, dir: &Dir) -> Result<(File, fs::Metadata), Failure> {
        let file = dir.open_file(&self.name).map_err(|e| {
            if moved(&e) {
                Failure::new(CHANGED)
            } else {
                Failure::new(io_reason(&e))
            }
        })?;
        let meta = file.metadata().map_err(|e| Failure::new(io_reason(&e)))?;
        check_kind(&meta)?;
        Ok((file, meta))
    }

    /// Replaces the file's content with `bytes`, unless it is no longer `original`: a
    /// temporary file beside it, with the original's permissions and owner, synced, then
    /// renamed over it, all in the directory checked at first.
    ///
    /// # Errors
    /// One line saying what failed; the file is then as it was.
    pub(super) fn replace(
        &self,
        original: &[u8],
        bytes: &[u8],
        meta: &fs::Metadata,
        limit: u64,
    ) -> Result<(), String> {
        let dir = self.pin().map_err(|f| f.message)?;
        let (mut file, _) = self.open_in(&dir).map_err(|f| f.message)?;
        let now = read_at_most(&mut file, limit)
            .map_err(|e| format!("cannot read the file again: {}", io_reason(&e)))?;
        drop(file);
        if now.as_deref() != Some(original) {
            return Err(CHANGED.to_owned());
        }
        let (tmp, mut file) = self.create_temp(&dir)?;
        let shown = self.target.with_file_name(&tmp);
        let written = (|| {
            file.write_all(bytes)
                .map_err(|e| format!("cannot write {}: {}", shown.display(), io_reason(&e)))?;
            keep_owner(&file, meta)?;
            // After the owner: changing the owner clears set-user-id and set-group-id bits.
            file.set_permissions(meta.permissions()).map_err(|e| {
                format!(
                    "cannot give {} the file's permissions: {}",
                    shown.display(),
                    io_reason(&e)
                )
            })?;
            file.sync_all()
                .map_err(|e| format!("cannot sync {}: {}", shown.display(), io_reason(&e)))?;
            drop(file);
            dir.rename(&tmp, &self.name).map_err(|e| {
                format!(
                    "cannot rename {} over the file: {}",
                    shown.display(),
                    io_reason(&e)
                )
            })
        })();
        if written.is_err() {
            let _ = dir.remove(&tmp);
            return written;
        }
        // The rename is atomic whatever happens next; syncing the directory only makes it
        // survive a power loss, so a directory that cannot be synced does not fail the file.
        let _ = dir.sync();
        Ok(())
    }

    /// A new, private file in the file's directory named after it, which no other file has.
    fn create_temp(&self, dir: &Dir) -> Result<(OsString, File), String> {
        let stem: String = self.name.to_string_lossy().chars().take(64).collect();
        let in_dir = || {
            self.target
                .parent()
                .map_or_else(|| ".".to_owned(), |d| d.display().to_string())
        };
        let mut last = None;
        for attempt in 0..100 {
            let tmp = OsString::from(format!(
                ".{stem}.{}.{attempt}.stamp.tmp",
                std::process::id()
            ));
            match dir.create_new(&tmp) {
                Ok(file) => return Ok((tmp, file)),
                // Any existing name, a link planted there included: try another.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(format!(
                        "cannot create a temporary file in {}: {}",
                        in_dir(),
                        io_reason(&e)
                    ));
                }
            }
        }
        Err(format!(
            "cannot create a temporary file in {}: {}",
            in_dir(),
            last.map_or_else(|| "too many attempts".to_owned(), |e| io_reason(&e))
        ))
    }
}

/// Reads the whole file if it is at most `limit` bytes; `None` if it is larger.
pub(super) fn read_at_most(file: &mut File, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// Only regular files are stamped.
fn check_kind(meta: &fs::Metadata) -> Result<(), Failure> {
    if meta.is_dir() {
        Err(Failure::new("a directory: give the files to stamp"))
    } else if !meta.is_file() {
        Err(Failure::new("not a regular file"))
    } else {
        Ok(())
    }
}

/// Whether an error opening a name relative to a checked directory means that the name was
/// moved or replaced (by a link: `O_NOFOLLOW` refuses it) since it was resolved.
fn moved(e: &io::Error) -> bool {
    #[cfg(unix)]
    if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) {
        return true;
    }
    e.kind() == io::ErrorKind::NotFound
}

/// Gives the new file the original's owner and group, so stamping as another user (root)
/// does not take the file over.
#[cfg(unix)]
fn keep_owner(file: &File, meta: &fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let now = file
        .metadata()
        .map_err(|e| format!("cannot read the temporary file: {}", io_reason(&e)))?;
    if (now.uid(), now.gid()) == (meta.uid(), meta.gid()) {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid())).map_err(|e| {
        format!(
            "cannot keep the file's owner {}:{}: {}",
            meta.uid(),
            meta.gid(),
            io_reason(&e)
        )
    })
}

#[cfg(not(unix))]
fn keep_owner(_file: &File, _meta: &fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// An open directory; names are opened, created, renamed and removed relative to it.
#[cfg(unix)]
struct Dir(File);

#[cfg(unix)]
impl Dir {
    /// Opens `path`, following links: the directory a FILE was named in.
    fn open(path: &Path) -> io::Result<Dir> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)?;
        Ok(Dir(file))
    }

    fn id(&self) -> io::Result<FileId> {
        Ok(file_id(&self.0.metadata()?))
    }

    /// Opens `name` with `flags` (`O_CLOEXEC` and `O_NOFOLLOW` added) relative to this
    /// directory.
    fn open_at(&self, name: &OsStr, flags: libc::c_int) -> io::Result<File> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let name = c_name(name)?;
        let flags = flags | libc::O_CLOEXEC | libc::O_NOFOLLOW;
        let mode: libc::c_uint = 0o600;
        // SAFETY: `name` is a NUL-terminated string that outlives the call, the descriptor is
        // this directory's, open while `self` is borrowed; `mode` is read only with O_CREAT.
        let fd = unsafe { libc::openat(self.0.as_raw_fd(), name.as_ptr(), flags, mode) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by `openat`, is valid and owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Opens a subdirectory, refusing a link.
    fn child(&self, name: &OsStr) -> io::Result<Dir> {
        self.open_at(name, libc::O_RDONLY | libc::O_DIRECTORY)
            .map(Dir)
    }

    /// Opens a file for reading, refusing a link; a FIFO does not block the open.
    fn open_file(&self, name: &OsStr) -> io::Result<File> {
        self.open_at(name, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY)
    }

    /// Creates a new file, readable and writable by its owner only; any existing name (a
    /// link included, which is not followed) is `AlreadyExists`.
    fn create_new(&self, name: &OsStr) -> io::Result<File> {
        self.open_at(name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL)
    }

    fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (from, to) = (c_name(from)?, c_name(to)?);
        let fd = self.0.as_raw_fd();
        // SAFETY: both names are NUL-terminated strings that outlive the call; `fd` is this
        // directory's open descriptor.
        if unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn remove(&self, name: &OsStr) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let name = c_name(name)?;
        // SAFETY: `name` is a NUL-terminated string that outlives the call; the descriptor is
        // this directory's.
        if unsafe { libc::unlinkat(self.0.as_raw_fd(), name.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}

/// A name as the C calls take it.
#[cfg(unix)]
fn c_name(name: &OsStr) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a name with a NUL byte"))
}

/// A directory by path, each step checked not to be a link (see the module doc).
#[cfg(not(unix))]
struct Dir(PathBuf);

#[cfg(not(unix))]
impl Dir {
    fn open(path: &Path) -> io::Result<Dir> {
        if fs::metadata(path)?.is_dir() {
            Ok(Dir(path.to_owned()))
        } else {
            Err(io::Error::new(io::ErrorKind::NotFound, "not a directory"))
        }
    }

    fn id(&self) -> io::Result<FileId> {
        Ok(file_id(&fs::metadata(&self.0)?))
    }

    fn unlinked(&self, name: &OsStr) -> io::Result<PathBuf> {
        let path = self.0.join(name);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "replaced by a symbolic link",
            )),
            _ => Ok(path),
        }
    }

    fn child(&self, name: &OsStr) -> io::Result<Dir> {
        Dir::open(&self.unlinked(name)?)
    }

    fn open_file(&self, name: &OsStr) -> io::Result<File> {
        File::open(self.unlinked(name)?)
    }

    fn create_new(&self, name: &OsStr) -> io::Result<File> {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.0.join(name))
    }

    fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        fs::rename(self.0.join(from), self.unlinked(to)?)
    }

    fn remove(&self, name: &OsStr) -> io::Result<()> {
        fs::remove_file(self.0.join(name))
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 1 << 20;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replace_keeps_permissions_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("run.sh");
        fs::write(&file, "echo\n").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&file, fs::Permissions::from_mode(0o751)).expect("chmod");
        }
        let (place, _, meta) = Place::resolve(&file).expect("resolved");
        place
            .replace(b"echo\n", b"# h\necho\n", &meta, LIMIT)
            .expect("replaced");
        assert_eq!(fs::read(&file).expect("read"), b"# h\necho\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&file).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o7777, 0o751);
        }
        assert_eq!(names(dir.path()), ["run.sh"]);
    }

    #[test]
    fn a_changed_file_is_not_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("a.sh");
        fs::write(&file, "echo\n").expect("write");
        let (place, _, meta) = Place::resolve(&file).expect("resolved");
        fs::write(&file, "echo 2\n").expect("write");
        let err = place
            .replace(b"echo\n", b"# h\necho\n", &meta, LIMIT)
            .expect_err("changed");
        assert_eq!(err, CHANGED);
        assert_eq!(fs::read(&file).expect("read"), b"echo 2\n");
    }

    /// A tree `root/` and a directory `outside/` holding `victim` with the same content as
    /// the file to stamp, so that only where a write lands tells whether it was redirected.
    #[cfg(unix)]
    struct Trap {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    #[cfg(unix)]
    impl Trap {
        const ORIGINAL: &'static [u8] = b"echo\n";

        fn new() -> Trap {
            let dir = tempfile::tempdir().expect("temp dir");
            let root = dir.path().join("root");
            let outside = dir.path().join("outside");
            fs::create_dir_all(root.join("sub")).expect("mkdir");
            fs::create_dir_all(&outside).expect("mkdir");
            for name in ["victim", "a.sh"] {
                fs::write(outside.join(name), Self::ORIGINAL).expect("write");
            }
            Trap {
                _dir: dir,
                root,
                outside,
            }
        }

        /// Nothing outside was written, created or removed.
        fn check_outside(&self) {
            assert_eq!(names(&self.outside), ["a.sh", "victim"]);
            for name in ["victim", "a.sh"] {
                assert_eq!(
                    fs::read(self.outside.join(name)).expect("read"),
                    Self::ORIGINAL
                );
            }
        }

        fn stamp(&self, place: &Place, meta: &fs::Metadata) -> Result<(), String> {
            place.replace(Self::ORIGINAL, b"# h\necho\n", meta, LIMIT)
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_the_temporary_name_is_not_written_through() {
        use std::os::unix::fs::symlink;
        let trap = Trap::new();
        let file = trap.root.join("f.sh");
        fs::write(&file, Trap::ORIGINAL).expect("write");
        for attempt in 0..3 {
            let tmp = format!(".f.sh.{}.{attempt}.stamp.tmp", std::process::id());
            symlink(trap.outside.join("victim"), trap.root.join(tmp)).expect("symlink");
        }
        let (place, _, meta) = Place::resolve(&file).expect("resolved");
        trap.stamp(&place, &meta)
            .expect("stamped under another name");
        assert_eq!(fs::read(&file).expect("read"), b"# h\necho\n");
        trap.check_outside();
        let planted = fs::symlink_metadata(
            trap.root
                .join(format!(".f.sh.{}.0.stamp.tmp", std::process::id())),
        )
        .expect("still there");
        assert!(planted.file_type().is_symlink());
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_replaced_by_a_link_after_the_check_is_not_written_through() {
        use std::os::unix::fs::symlink;
        // The directory the file is named in, then a directory between it and the file.
        for (given, link, swapped) in [("sub/a.sh", None, "sub"), ("a.sh", Some("sub/a.sh"), "sub")]
        {
            let trap = Trap::new();
            fs::write(trap.root.join("sub/a.sh"), Trap::ORIGINAL).expect("write");
            if let Some(to) = link {
                symlink(to, trap.root.join(given)).expect("symlink");
            }
            let (place, _, meta) = Place::resolve(&trap.root.join(given)).expect("resolved");
            fs::rename(trap.root.join(swapped), trap.root.join("moved")).expect("move");
            symlink(&trap.outside, trap.root.join(swapped)).expect("symlink");
            assert_eq!(
                trap.stamp(&place, &meta),
                Err(CHANGED.to_owned()),
                "{given}"
            );
            trap.check_outside();
            assert_eq!(
                fs::read(trap.root.join("moved/a.sh")).expect("read"),
                Trap::ORIGINAL
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_file_replaced_by_a_link_after_the_check_is_not_written_through() {
        use std::os::unix::fs::symlink;
        let trap = Trap::new();
        let file = trap.root.join("a.sh");
        fs::write(&file, Trap::ORIGINAL).expect("write");
        let (place, _, meta) = Place::resolve(&file).expect("resolved");
        fs::remove_file(&file).expect("remove");
        symlink(trap.outside.join("a.sh"), &file).expect("symlink");
        assert_eq!(trap.stamp(&place, &meta), Err(CHANGED.to_owned()));
        trap.check_outside();
        assert!(
            fs::symlink_metadata(&file)
                .expect("link")
                .file_type()
                .is_symlink()
        );
    }

    #[cfg(unix)]
    #[test]
    fn links_out_of_the_directory_are_refused_before_anything_is_opened() {
        use std::os::unix::fs::symlink;
        let trap = Trap::new();
        symlink(trap.outside.join("victim"), trap.root.join("abs.sh")).expect("symlink");
        symlink("../../outside/a.sh", trap.root.join("sub/rel.sh")).expect("symlink");
        symlink("../a.sh", trap.root.join("sub/up.sh")).expect("symlink");
        fs::write(trap.root.join("a.sh"), Trap::ORIGINAL).expect("write");
        for given in ["abs.sh", "sub/rel.sh", "sub/up.sh"] {
            let failure = Place::resolve(&trap.root.join(given)).expect_err(given);
            assert!(
                failure.message.starts_with("a symbolic link to ")
                    && failure.message.contains(", outside its directory "),
                "{given}: {}",
                failure.message
            );
        }
        // Inside, and the link named in the target's own directory: fine.
        symlink("sub/../a.sh", trap.root.join("same.sh")).expect("symlink");
        let (place, _, _) = Place::resolve(&trap.root.join("same.sh")).expect("inside");
        assert_eq!(
            place.target,
            fs::canonicalize(trap.root.join("a.sh")).expect("real")
        );
    }
}
