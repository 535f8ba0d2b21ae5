#!/usr/bin/python3
"""A disk that stalls on demand, for cleannvr's slow-disk test (tests/slow_disk.rs).

A FUSE passthrough filesystem (Debian's python3-fusepy over libfuse2): every
operation goes to BACKING, so files land on a real disk. While the file
STALL_FLAG exists, each write, fsync and flush of a file whose path starts with
/STALL_UNDER/ blocks until the flag is removed, as a disk that stops answering
for a while (a dying USB disk, an overloaded NAS) blocks the writer. Other paths
stay fast, so the test can tell the recorder's stall from everything else.

Run as root with Debian's /usr/bin/python3:
  slow_fs.py BACKING MOUNTPOINT STALL_FLAG STALL_UNDER
Prints "stalled <op> <path>" when an operation starts waiting and
"released <op> <path> after <seconds>" when it goes on; runs in the foreground
until unmounted (fusermount -u).
"""
import errno
import os
import sys
import threading
import time

from fusepy import FUSE, FuseOSError, Operations


class SlowPassthrough(Operations):
    def __init__(self, backing, flag, under):
        self.backing = backing
        self.flag = flag
        self.prefix = "/" + under + "/"
        self.out = threading.Lock()

    def _real(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    def _say(self, line):
        with self.out:
            print(line, flush=True)

    def _maybe_stall(self, op, path):
        if not path.startswith(self.prefix) or not os.path.exists(self.flag):
            return
        self._say(f"stalled {op} {path}")
        start = time.monotonic()
        while os.path.exists(self.flag):
            time.sleep(0.05)
        self._say(f"released {op} {path} after {time.monotonic() - start:.1f}")

    def __call__(self, op, *args):
        try:
            return getattr(self, op)(*args)
        except OSError as e:
            raise FuseOSError(e.errno or errno.EIO)

    # Metadata.
    def access(self, path, amode):
        if not os.access(self._real(path), amode):
            raise FuseOSError(errno.EACCES)
        return 0

    def getattr(self, path, fh=None):
        st = os.lstat(self._real(path)) if fh is None else os.fstat(fh)
        return {
            k: getattr(st, k)
            for k in (
                "st_mode", "st_nlink", "st_uid", "st_gid", "st_size",
                "st_atime", "st_mtime", "st_ctime",
            )
        }

    def chmod(self, path, mode):
        os.chmod(self._real(path), mode)
        return 0

    def chown(self, path, uid, gid):
        os.chown(self._real(path), uid, gid)
        return 0

    def utimens(self, path, times=None):
        os.utime(self._real(path), times)
        return 0

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._real(path))

    def readlink(self, path):
        return os.readlink(self._real(path))

    def statfs(self, path):
        sv = os.statvfs(self._real(path))
        return {
            k: getattr(sv, k)
            for k in (
                "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax",
            )
        }

    def mknod(self, path, mode, dev):
        # Unix sockets (cleannvr's control socket) are made this way.
        os.mknod(self._real(path), mode, dev)
        return 0

    def mkdir(self, path, mode):
        os.mkdir(self._real(path), mode)
        return 0

    def rmdir(self, path):
        os.rmdir(self._real(path))
        return 0

    def unlink(self, path):
        os.unlink(self._real(path))
        return 0

    def symlink(self, target, source):
        os.symlink(source, self._real(target))
        return 0

    def link(self, target, source):
        os.link(self._real(source), self._real(target))
        return 0

    def rename(self, old, new):
        os.rename(self._real(old), self._real(new))
        return 0

    def fsyncdir(self, path, datasync, fh):
        fd = os.open(self._real(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return 0

    # File contents.
    def open(self, path, flags):
        return os.open(self._real(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._real(path), os.O_RDWR | os.O_CREAT, mode)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        self._maybe_stall("write", path)
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        if fh is None:
            os.truncate(self._real(path), length)
        else:
            os.ftruncate(fh, length)
        return 0

    def flush(self, path, fh):
        self._maybe_stall("flush", path)
        return 0

    def fsync(self, path, datasync, fh):
        self._maybe_stall("fsync", path)
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0


def main():
    backing, mountpoint, flag, under = sys.argv[1:5]
    # Multithreaded (the default): a stalled write blocks only its caller, as
    # on a real disk, and reads of finished files go on.
    FUSE(SlowPassthrough(backing, flag, under), mountpoint, foreground=True)


if __name__ == "__main__":
    main()
