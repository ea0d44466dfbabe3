//! `mist_platform::fs` on real files in temp folders.

#![cfg(unix)]

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};

use mist_platform::fs::{
    AtomicWrite, clear_nonblocking, create_dir, create_new_nofollow, is_dir_not_empty,
    is_executable, is_symlink_refusal, open_nofollow, open_regular_nofollow, set_mode, sync_dir,
    write_atomic, write_atomic_with,
};

fn mkfifo(path: &Path) {
    let path = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn is_nonblocking(file: &fs::File) -> bool {
    // SAFETY: `fcntl(F_GETFL)` on an open descriptor.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    assert_ne!(flags, -1);
    flags & libc::O_NONBLOCK != 0
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn open_regular_nofollow_reads_files_and_refuses_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"content").unwrap();
    symlink(&file, dir.path().join("link")).unwrap();
    fs::create_dir(dir.path().join("folder")).unwrap();
    mkfifo(&dir.path().join("fifo"));

    let mut opened = open_regular_nofollow(&file).unwrap();
    assert!(!is_nonblocking(&opened));
    let mut content = String::new();
    opened.read_to_string(&mut content).unwrap();
    assert_eq!(content, "content");

    let error = open_regular_nofollow(&dir.path().join("link")).unwrap_err();
    assert!(is_symlink_refusal(&error), "{error}");
    // A fifo with no writer would block an ordinary open forever.
    let start = Instant::now();
    for name in ["folder", "fifo"] {
        let error = open_regular_nofollow(&dir.path().join(name)).unwrap_err();
        assert_eq!(error.to_string(), "not a regular file", "{name}");
        assert!(!is_symlink_refusal(&error), "{name}");
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    let error = open_regular_nofollow(&dir.path().join("missing")).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
}

#[test]
fn open_nofollow_opens_any_type_without_blocking_and_clear_nonblocking_undoes_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    mkfifo(&dir.path().join("fifo"));
    symlink("file", dir.path().join("link")).unwrap();

    let fifo = open_nofollow(&dir.path().join("fifo")).unwrap();
    assert!(fifo.metadata().unwrap().file_type().is_fifo_like());
    let error = open_nofollow(&dir.path().join("link")).unwrap_err();
    assert!(is_symlink_refusal(&error), "{error}");

    let opened = open_nofollow(&file).unwrap();
    assert!(is_nonblocking(&opened));
    clear_nonblocking(&opened).unwrap();
    assert!(!is_nonblocking(&opened));
    // The access mode is untouched: the file still reads.
    let mut byte = [0u8; 1];
    (&opened).read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"x");
}

/// `FileTypeExt::is_fifo`, named so the assertion reads.
trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

#[test]
fn error_predicates_recognise_their_errors_only() {
    assert!(is_symlink_refusal(&io::Error::from_raw_os_error(
        libc::ELOOP
    )));
    assert!(!is_symlink_refusal(&io::Error::from_raw_os_error(
        libc::ENOENT
    )));
    assert!(!is_symlink_refusal(&io::Error::other("loop")));

    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("kept"), b"").unwrap();
    let error = fs::remove_dir(&full).unwrap_err();
    assert!(is_dir_not_empty(&error), "{error}");
    assert!(is_dir_not_empty(&io::Error::from_raw_os_error(
        libc::EEXIST
    )));
    assert!(!is_dir_not_empty(&io::Error::from_raw_os_error(
        libc::ENOENT
    )));
}

#[test]
fn create_new_nofollow_refuses_what_exists_and_never_writes_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::write(&outside, b"untouched").unwrap();
    symlink(&outside, dir.path().join("link")).unwrap();
    symlink(dir.path().join("nowhere"), dir.path().join("dangling")).unwrap();

    let path = dir.path().join("new");
    let mut file = create_new_nofollow(&path, 0o640).unwrap();
    file.write_all(b"new").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new");
    assert_eq!(mode_of(&path) & !0o640, 0, "the umask only takes bits away");

    for name in ["new", "link", "dangling"] {
        let error = create_new_nofollow(&dir.path().join(name), 0o644).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{name}");
    }
    assert_eq!(fs::read(&outside).unwrap(), b"untouched");
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn create_dir_makes_one_folder_with_its_mode_and_refuses_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("folder");
    create_dir(&path, 0o700).unwrap();
    assert!(path.is_dir());
    assert_eq!(mode_of(&path), 0o700);
    assert_eq!(
        create_dir(&path, 0o700).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    symlink(&path, dir.path().join("link")).unwrap();
    assert_eq!(
        create_dir(&dir.path().join("link"), 0o755)
            .unwrap_err()
            .kind(),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        create_dir(&dir.path().join("a/b"), 0o755)
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn set_mode_and_is_executable_agree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tool");
    let file = create_new_nofollow(&path, 0o600).unwrap();
    for (mode, executable) in [(0o755, true), (0o644, false), (0o100, true), (0o4750, true)] {
        set_mode(&file, mode).unwrap();
        assert_eq!(mode_of(&path), mode);
        assert_eq!(
            is_executable(&fs::metadata(&path).unwrap()),
            executable,
            "{mode:o}"
        );
    }
}

#[test]
fn sync_dir_syncs_folders_and_reports_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    sync_dir(dir.path()).unwrap();
    assert_eq!(
        sync_dir(&dir.path().join("missing")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn write_atomic_writes_the_content_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    write_atomic(&path, b"first", AtomicWrite::default()).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"first");
    write_atomic(&path, b"second", AtomicWrite::default()).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second");
    assert_eq!(names(dir.path()), ["state.json"]);
}

#[test]
fn write_atomic_sets_the_exact_mode_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let options = |mode| AtomicWrite {
        mode: Some(mode),
        replace: true,
    };
    let path = dir.path().join("secret");
    write_atomic(&path, b"x", options(0o600)).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    // Bits a usual umask (022) would take away are set all the same.
    write_atomic(&path, b"x", options(0o777)).unwrap();
    assert_eq!(mode_of(&path), 0o777);
    write_atomic(&path, b"x", options(0o644)).unwrap();
    assert_eq!(mode_of(&path), 0o644);
}

#[test]
fn write_atomic_without_replace_refuses_an_existing_file_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = AtomicWrite {
        mode: Some(0o600),
        replace: false,
    };
    let path = dir.path().join("new.mtd");
    write_atomic(&path, b"one", options).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"one");
    assert_eq!(mode_of(&path), 0o600);
    let error = write_atomic(&path, b"two", options).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read(&path).unwrap(), b"one");
    assert_eq!(names(dir.path()), ["new.mtd"]);
}

#[test]
fn write_atomic_replaces_a_symlink_without_writing_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::write(&outside, b"untouched").unwrap();
    let path = dir.path().join("config");
    symlink(&outside, &path).unwrap();
    write_atomic(&path, b"mine", AtomicWrite::default()).unwrap();
    assert!(!fs::symlink_metadata(&path).unwrap().is_symlink());
    assert_eq!(fs::read(&path).unwrap(), b"mine");
    assert_eq!(fs::read(&outside).unwrap(), b"untouched");
}

#[test]
fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    fs::write(&path, b"old").unwrap();

    let error = write_atomic_with(&path, AtomicWrite::default(), |file| {
        file.write_all(b"half")?;
        Err::<(), _>(io::Error::other("the fill failed"))
    })
    .unwrap_err();
    assert_eq!(error.to_string(), "the fill failed");
    assert_eq!(fs::read(&path).unwrap(), b"old");
    assert_eq!(names(dir.path()), ["state"]);

    // A folder in the way: the rename fails, and the folder is left as it was.
    let folder = dir.path().join("folder");
    fs::create_dir(&folder).unwrap();
    fs::write(folder.join("inside"), b"").unwrap();
    write_atomic(&folder, b"x", AtomicWrite::default()).unwrap_err();
    assert!(folder.join("inside").exists());
    assert_eq!(names(dir.path()), ["folder", "state"]);

    // A missing folder: nothing to write into.
    let error =
        write_atomic(&dir.path().join("no/such"), b"x", AtomicWrite::default()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    let error = write_atomic(Path::new("/"), b"x", AtomicWrite::default()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn write_atomic_with_streams_into_the_file_and_passes_the_callers_error_type() {
    #[derive(Debug)]
    enum Failure {
        Io(io::Error),
        Refused,
    }
    impl From<io::Error> for Failure {
        fn from(error: io::Error) -> Self {
            Failure::Io(error)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamed");
    write_atomic_with(&path, AtomicWrite::default(), |file| {
        for chunk in 0..4u8 {
            file.write_all(&[chunk; 1000])?;
        }
        Ok::<(), Failure>(())
    })
    .unwrap();
    assert_eq!(fs::read(&path).unwrap().len(), 4000);
    let error =
        write_atomic_with(&path, AtomicWrite::default(), |_| Err(Failure::Refused)).unwrap_err();
    assert!(matches!(error, Failure::Refused), "{error:?}");
    // The function's own failures arrive through `From<io::Error>`.
    let error = write_atomic_with(&dir.path().join("no/such"), AtomicWrite::default(), |_| {
        Ok::<(), Failure>(())
    })
    .unwrap_err();
    assert!(
        matches!(&error, Failure::Io(io) if io.kind() == io::ErrorKind::NotFound),
        "{error:?}"
    );
    assert_eq!(fs::read(&path).unwrap().len(), 4000);
    assert_eq!(names(dir.path()), ["streamed"]);
}

#[test]
fn a_stale_temporary_file_of_an_earlier_process_does_not_block_a_write() {
    // Files a crashed process with this process's id could have left, under every
    // temporary name the next write can take (the counter behind the names is shared by
    // the few hundred writes of this test binary).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let n_planted = 5000;
    for n in 0..n_planted {
        let stale = dir
            .path()
            .join(format!(".state.tmp-{}-{n}", std::process::id()));
        fs::write(stale, b"stale").unwrap();
    }
    write_atomic(&path, b"fresh", AtomicWrite::default()).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"fresh");
    // The one stale file under the name the write took became `state`.
    assert_eq!(names(dir.path()).len(), n_planted);
}

#[test]
fn parallel_writes_of_one_path_never_mix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared");
    std::thread::scope(|scope| {
        for thread in 0..8u8 {
            let path = &path;
            scope.spawn(move || {
                for _ in 0..20 {
                    write_atomic(path, &[thread; 4096], AtomicWrite::default()).unwrap();
                }
            });
        }
    });
    let content = fs::read(&path).unwrap();
    assert_eq!(content.len(), 4096);
    assert!(content.iter().all(|byte| *byte == content[0]));
    assert_eq!(names(dir.path()), ["shared"]);
}

#[test]
fn a_folder_has_free_space_and_a_missing_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let free = mist_platform::fs::free_space(dir.path()).unwrap();
    assert!(free.expect("statvfs on Unix") > 0);
    assert!(mist_platform::fs::free_space(&dir.path().join("missing")).is_err());
}
