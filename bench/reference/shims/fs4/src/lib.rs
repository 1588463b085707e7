//! Shim of the `fs4` crate: the two calls scope_lock.rs makes, on flock(2)
//! as fs4 does on Unix.
pub mod fs_std {
    use std::fs::File;
    use std::io;
    use std::os::unix::io::AsRawFd;

    fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
        loop {
            // SAFETY: flock on a descriptor we borrow for the call.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    pub trait FileExt {
        fn lock_exclusive(&self) -> io::Result<()>;
        fn unlock(&self) -> io::Result<()>;
    }

    impl FileExt for File {
        fn lock_exclusive(&self) -> io::Result<()> {
            flock(self, libc::LOCK_EX)
        }
        fn unlock(&self) -> io::Result<()> {
            flock(self, libc::LOCK_UN)
        }
    }
}
