#!/usr/bin/python3
"""A tiny FUSE filesystem that serves files which fail in chosen, real ways.

Used by tests/tests/faults.rs (which plants symlinks from a fixture tree into the mount, so
the collector's open()/read() go through the kernel's FUSE path and get real errnos back) and
tests/tests/filesystem.rs (a mount whose statfs never answers).

Usage: faultfs.py MOUNTPOINT SPEC.json [--statfs-block-until PATH]
SPEC maps a file name (flat, no directories) to an object:
  {"content": "text", "fault": KIND}
KIND is one of
  "none"          plain readable file;
  "read:ERRNO"    open succeeds, every read fails with ERRNO (EIO, EAGAIN, ENODEV, ...);
  "open:ERRNO"    open fails with ERRNO;
  "vanish"        open succeeds, then the file is removed: the open file's reads fail with
                  ENODEV, as sysfs (kernfs) answers for a removed device's attribute;
  "shrink:N"      the first read returns only the first line (a short read, as seq_file
                  hands out records), later reads see only the first N lines: the file lost
                  entries while being read, like /proc/net/dev when a device goes.
Runs in the foreground until unmounted; prints "ready" on stdout once serving.

Option --statfs-block-until PATH: statfs(2) on the mount blocks until PATH exists (a dead NFS
server, a hung FUSE daemon), then answers: block size 4096, 1000 blocks, 500 free, 400
available, 100 inodes, 50 free. Without it statfs answers the same at once.
"""

import errno
import json
import os
import stat
import sys
import threading
import time

from fusepy import FUSE, FuseOSError, Operations


class FaultFS(Operations):
    def __init__(self, spec, statfs_gate=None):
        self.spec = spec
        self.statfs_gate = statfs_gate
        self.mu = threading.Lock()
        self.removed = set()
        # fh -> state of one open file: reads seen so far.
        self.handles = {}
        self.next_fh = 1

    def _entry(self, path):
        name = path.lstrip("/")
        e = self.spec.get(name)
        if e is None or name in self.removed:
            raise FuseOSError(errno.ENOENT)
        return name, e

    def getattr(self, path, fh=None):
        now = time.time()
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2,
                        st_ctime=now, st_mtime=now, st_atime=now)
        _, e = self._entry(path)
        # Size 0, like procfs and sysfs files: readers must read to EOF.
        return dict(st_mode=stat.S_IFREG | 0o444, st_nlink=1, st_size=0,
                    st_ctime=now, st_mtime=now, st_atime=now)

    def readdir(self, path, fh):
        return [".", ".."] + [n for n in self.spec if n not in self.removed]

    def open(self, path, flags):
        name, e = self._entry(path)
        fault = e.get("fault", "none")
        if fault.startswith("open:"):
            raise FuseOSError(getattr(errno, fault[5:]))
        with self.mu:
            fh = self.next_fh
            self.next_fh += 1
            self.handles[fh] = {"name": name, "reads": 0}
            if fault == "vanish":
                self.removed.add(name)
        return fh

    def read(self, path, size, offset, fh):
        with self.mu:
            h = self.handles.get(fh)
            if h is None:
                raise FuseOSError(errno.EBADF)
            e = self.spec[h["name"]]
            reads = h["reads"]
            h["reads"] += 1
        fault = e.get("fault", "none")
        data = e.get("content", "").encode()
        if fault.startswith("read:"):
            raise FuseOSError(getattr(errno, fault[5:]))
        if fault == "vanish":
            raise FuseOSError(errno.ENODEV)
        if fault.startswith("shrink:"):
            lines = data.splitlines(keepends=True)
            if reads == 0:
                size = min(size, len(lines[0]) - offset if lines else 0)
            else:
                data = b"".join(lines[:int(fault[7:])])
        return data[offset:offset + size]

    def statfs(self, path):
        # Blocks this request (fusepy serves others on other threads) until the gate opens.
        while self.statfs_gate and not os.path.exists(self.statfs_gate):
            time.sleep(0.01)
        return dict(f_bsize=4096, f_frsize=4096, f_blocks=1000, f_bfree=500, f_bavail=400,
                    f_files=100, f_ffree=50, f_favail=50, f_namemax=255)

    def release(self, path, fh):
        with self.mu:
            self.handles.pop(fh, None)
        return 0


def main():
    mnt, spec_path = sys.argv[1], sys.argv[2]
    gate = None
    if len(sys.argv) == 5 and sys.argv[3] == "--statfs-block-until":
        gate = sys.argv[4]
    with open(spec_path) as f:
        spec = json.load(f)

    # Say "ready" from a thread once the mount is visible, so the test can wait on it.
    def announce():
        while not os.path.ismount(mnt):
            time.sleep(0.01)
        print("ready", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    # direct_io: no page cache, every read() reaches us (and its errno reaches the reader).
    FUSE(FaultFS(spec, gate), mnt, foreground=True, nothreads=False, direct_io=True,
         fsname="nodetune-faultfs")


if __name__ == "__main__":
    main()
