#!/usr/bin/python3
"""powercut_fs: an in-memory FUSE file system that loses, at a "cut", everything not made
durable by fsync/fdatasync (files) or fsync of the directory (names). See README.md beside
this file for the model, the control protocol and the mount options.

Usage: powercut_fs.py MOUNTPOINT [--size BYTES] [--trace]
Control: one command a line on stdin (cut, stats, sync, ping), one answer a line on stdout.
"""
import argparse
import ctypes
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

try:
    import fusepy as fusemod  # Debian's python3-fusepy names the module fusepy
except ImportError:
    import fuse as fusemod  # pip's fusepy names it fuse
if not hasattr(fusemod, 'FUSE'):
    # `fuse` can also be the unrelated fuse-python binding
    sys.exit('powercut_fs: the fuse module found is not fusepy')

FuseOSError = fusemod.FuseOSError
Operations = fusemod.Operations

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
BLOCK = 4096
HIDDEN = '.fuse_hidden'


def _with_fallocate():
    """fusepy's fuse_operations ends at ioctl, so libfuse answers fallocate with ENOSYS (the
    kernel then says EOPNOTSUPP). libfuse 2.9's struct goes on with poll, write_buf, read_buf,
    flock and fallocate: declare those so fallocate reaches us. Returns the FUSE class to use."""
    ops = getattr(fusemod, 'fuse_operations', None)
    if ops is None or ops._fields_[-1][0] != 'ioctl':
        return fusemod.FUSE
    fi_p = ctypes.POINTER(fusemod.fuse_file_info)

    class fuse_operations_29(ctypes.Structure):
        _fields_ = list(ops._fields_) + [
            ('poll', ctypes.c_voidp),
            ('write_buf', ctypes.c_voidp),
            ('read_buf', ctypes.c_voidp),
            ('flock', ctypes.c_voidp),
            ('fallocate', ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                           fusemod.c_off_t, fusemod.c_off_t, fi_p)),
        ]

    fusemod.fuse_operations = fuse_operations_29

    class FUSE(fusemod.FUSE):
        def fallocate(self, path, mode, offset, length, fip):
            fh = fip.contents if self.raw_fi else fip.contents.fh
            return self.operations('fallocate', self._decode_optional_path(path), mode,
                                   offset, length, fh)

    return FUSE


class Node:
    """An inode: the volatile layer (what processes see) and the durable layer (what a cut
    leaves). Directory entries map names to Node objects."""
    __slots__ = ('ino', 'mode', 'uid', 'gid', 'atime', 'mtime', 'ctime',
                 'links', 'subdirs', 'opens', 'dref',
                 'data', 'dirty', 'entries', 'dirty_names', 'hidden', 'target',
                 'd_meta', 'd_data', 'd_entries')

    def __init__(self, ino, mode, uid, gid, now):
        self.ino = ino
        self.mode = mode
        self.uid, self.gid = uid, gid
        self.atime = self.mtime = self.ctime = now
        self.links = 0      # volatile directory entries naming this node
        self.subdirs = 0    # volatile subdirectories (directories only)
        self.opens = 0      # open handles
        self.dref = 0       # durable directory entries naming this node
        self.data = bytearray() if stat.S_ISREG(mode) else None
        # [lo, hi) ranges where data may differ from d_data; outside them (below both
        # lengths) the two agree, so an fsync copies only these
        self.dirty = []
        self.entries = {} if stat.S_ISDIR(mode) else None
        self.dirty_names = set()  # names changed since the last fsync of this directory
        # libfuse's .fuse_hidden names for unlinked files still open: reachable by path (so
        # fstat works), not listed, never durable
        self.hidden = {}
        self.target = None
        # a new inode is durable as created (empty): if a synced directory names it before
        # its own fsync, a cut leaves it empty
        self.d_meta = self.meta()
        self.d_data = bytearray() if self.data is not None else None
        self.d_entries = {} if self.entries is not None else None

    def meta(self):
        return (self.mode, self.uid, self.gid, self.atime, self.mtime, self.ctime)

    def set_meta(self, m):
        self.mode, self.uid, self.gid, self.atime, self.mtime, self.ctime = m

    def is_dir(self):
        return self.entries is not None


class Handle:
    __slots__ = ('node', 'flags')

    def __init__(self, node, flags):
        self.node = node
        self.flags = flags


def locked(fn):
    def wrapper(self, *args):
        with self._mu:
            return fn(self, *args)
    wrapper.__name__ = fn.__name__
    return wrapper


def now_ns():
    return time.time_ns()


class PowerCutFS(Operations):
    use_ns = True
    # ops on an open handle whose name is gone (unlinked while open) get path None
    flag_nullpath_ok = 1
    # no xattrs, answered ENOSYS by libfuse: the kernel then stops asking for
    # security.capability before every write
    getxattr = None
    setxattr = None
    listxattr = None
    removexattr = None

    def __init__(self, size, trace):
        # not "lock": fusepy would take an attribute of that name for the lock operation
        self._mu = threading.RLock()
        self.size = size
        self.trace = trace
        self.next_ino = 1
        self.next_fh = 1
        self.handles = {}
        uid, gid = os.getuid(), os.getgid()
        self.root = self._new(stat.S_IFDIR | 0o755, uid, gid)
        self.root.links = 1  # never freed
        self.root.dref = 1
        self.nodes = {self.root.ino: self.root}
        self.vbytes = 0  # sum of volatile file sizes, for statfs and ENOSPC
        self.counts = dict(cuts=0, fsync=0, fdatasync=0, fsyncdir=0, writes=0,
                           bytesWritten=0, opens=0, directOpens=0, fallocate=0)
        self.ready = threading.Event()

    # ---- helpers -------------------------------------------------------------------

    def _log(self, *parts):
        if self.trace:
            sys.stderr.write('powercut_fs: ' + ' '.join(str(p) for p in parts) + '\n')
            sys.stderr.flush()

    def _new(self, mode, uid=None, gid=None):
        if uid is None:
            uid, gid, _ = fusemod.fuse_get_context()
        node = Node(self.next_ino, mode, uid, gid, now_ns())
        self.next_ino += 1
        return node

    def _lookup(self, path):
        node = self.root
        if path == '/':
            return node
        for part in path[1:].split('/'):
            if node.entries is None:
                raise FuseOSError(errno.ENOTDIR)
            child = node.entries.get(part)
            if child is None:
                child = node.hidden.get(part)
                if child is None:
                    raise FuseOSError(errno.ENOENT)
            node = child
        return node

    def _parent(self, path):
        head, _, name = path.rpartition('/')
        parent = self._lookup(head or '/')
        if parent.entries is None:
            raise FuseOSError(errno.ENOTDIR)
        return parent, name

    def _handle(self, fi):
        fh = fi if isinstance(fi, int) else fi.fh
        h = self.handles.get(fh)
        if h is None:
            # a handle opened before the last cut: the "disk" under it is gone
            raise FuseOSError(errno.EIO)
        return h

    def _node(self, path, fi):
        return self._handle(fi).node if fi is not None else self._lookup(path)

    def _link(self, parent, name, node):
        parent.entries[name] = node
        parent.dirty_names.add(name)
        node.links += 1
        if node.is_dir():
            parent.subdirs += 1
        parent.mtime = parent.ctime = now_ns()

    def _unlink(self, parent, name):
        node = parent.entries.pop(name)
        parent.dirty_names.add(name)
        node.links -= 1
        if node.is_dir():
            parent.subdirs -= 1
        t = now_ns()
        parent.mtime = parent.ctime = node.ctime = t
        return node

    def _register(self, node):
        self.nodes[node.ino] = node

    def _maybe_free(self, node):
        """A node no volatile name reaches and no handle holds can never be seen again
        before a cut: drop its volatile content, and drop it whole if no durable name
        reaches it either."""
        if node is self.root or node.links > 0 or node.opens > 0:
            return
        if node.data is not None:
            self.vbytes -= len(node.data)
            node.data = None
            node.dirty = []
        if node.dref > 0:
            return
        self.nodes.pop(node.ino, None)
        if node.d_entries:
            children = list(node.d_entries.values())
            node.d_entries = {}
            for child in children:
                child.dref -= 1
                self._maybe_free(child)

    def _mark(self, node, lo, hi):
        d = node.dirty
        if d and d[-1][0] <= lo <= d[-1][1]:
            # sequential appends and rewrites of the tail stay one range
            if hi > d[-1][1]:
                d[-1] = (d[-1][0], hi)
            return
        d.append((lo, hi))
        if len(d) > 512:
            d.sort()
            merged = [d[0]]
            for a, b in d[1:]:
                if a <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], b))
                else:
                    merged.append((a, b))
            node.dirty = merged

    def _resize(self, node, length):
        buf = node.data
        old = len(buf)
        if length > old:
            if self.vbytes + length - old > self.size:
                raise FuseOSError(errno.ENOSPC)
            buf.extend(bytes(length - old))
            self._mark(node, old, length)
        elif length < old:
            del buf[length:]
        self.vbytes += length - old

    def _sync_data(self, node):
        buf, d = node.data, node.d_data
        if buf is None:
            return
        n = len(buf)
        for lo, hi in node.dirty:
            hi = min(hi, n)
            if lo >= hi:
                continue
            if lo > len(d):
                d.extend(bytes(lo - len(d)))
            d[lo:hi] = buf[lo:hi]
        if len(d) > n:
            del d[n:]
        elif len(d) < n:
            d.extend(buf[len(d):])  # not expected: growth is always marked dirty
        node.dirty = []

    def _sync_dir(self, node):
        for name in node.dirty_names:
            new = node.entries.get(name)
            old = node.d_entries.get(name)
            if new is old:
                continue
            if new is None:
                del node.d_entries[name]
            else:
                node.d_entries[name] = new
                new.dref += 1
            if old is not None:
                old.dref -= 1
                self._maybe_free(old)
        node.dirty_names = set()
        node.d_meta = node.meta()

    # ---- control commands (from the control thread) --------------------------------

    @locked
    def cut(self):
        """Power cut: every inode and directory back to its durable layer; inodes no
        durable name reaches are gone; every open handle is invalid."""
        self.handles.clear()
        seen = {self.root.ino: self.root}
        for node in self.nodes.values():
            node.links = node.subdirs = node.dref = node.opens = 0
        stack = [self.root]
        while stack:
            d = stack.pop()
            for name, child in list(d.d_entries.items()):
                if child.is_dir() and child.ino in seen:
                    # a directory named twice (cross-directory rename, both parents
                    # synced at different times): keep one name, like fsck would
                    del d.d_entries[name]
                    continue
                child.links += 1
                child.dref += 1
                if child.is_dir():
                    d.subdirs += 1
                if child.ino not in seen:
                    seen[child.ino] = child
                    if child.is_dir():
                        stack.append(child)
        self.root.links = self.root.dref = 1
        vbytes = 0
        for node in seen.values():
            node.set_meta(node.d_meta)
            if node.d_data is not None:
                if node.data is None or node.dirty or len(node.data) != len(node.d_data):
                    node.data = bytearray(node.d_data)
                node.dirty = []
                vbytes += len(node.data)
            if node.d_entries is not None:
                node.entries = dict(node.d_entries)
                node.dirty_names = set()
                node.hidden = {}
        self.nodes = seen
        self.vbytes = vbytes
        self.counts['cuts'] += 1
        self._log('cut', self.counts['cuts'], 'inodes', len(seen))
        return self.counts['cuts']

    @locked
    def sync_all(self):
        """Everything durable, as if every file and directory were fsynced (a checkpoint)."""
        for node in list(self.nodes.values()):
            if node.data is not None:
                self._sync_data(node)
            if node.entries is not None:
                self._sync_dir(node)
            node.d_meta = node.meta()

    @locked
    def stats(self):
        durable = sum(len(n.d_data) for n in self.nodes.values() if n.d_data is not None)
        dirty = 0
        for n in self.nodes.values():
            if n.data is not None:
                dirty += sum(max(0, min(hi, len(n.data)) - lo) for lo, hi in n.dirty)
        return dict(self.counts, inodes=len(self.nodes), volatileBytes=self.vbytes,
                    durableBytes=durable, dirtyBytes=dirty, handles=len(self.handles))

    # ---- FUSE operations -----------------------------------------------------------

    def init(self, path):
        self.ready.set()

    @locked
    def getattr(self, path, fi=None):
        node = self._node(path, fi)
        if node.data is not None:
            size = len(node.data)
        elif node.is_dir():
            size = BLOCK
        elif node.target is not None:
            size = len(node.target.encode())
        else:
            size = 0
        nlink = node.links if not node.is_dir() else (2 + node.subdirs if node.links else 0)
        return dict(st_ino=node.ino, st_mode=node.mode, st_nlink=nlink, st_uid=node.uid,
                    st_gid=node.gid, st_size=size, st_blksize=BLOCK,
                    st_blocks=(size + 511) // 512, st_atime=node.atime,
                    st_mtime=node.mtime, st_ctime=node.ctime)

    @locked
    def access(self, path, amode):
        self._lookup(path)  # permission bits: the kernel checks them (default_permissions)
        return 0

    @locked
    def statfs(self, path):
        used = -(-self.vbytes // BLOCK)
        total = self.size // BLOCK
        free = max(0, total - used)
        files = 1 << 24
        return dict(f_bsize=BLOCK, f_frsize=BLOCK, f_blocks=total, f_bfree=free,
                    f_bavail=free, f_files=files, f_ffree=files - len(self.nodes),
                    f_favail=files - len(self.nodes), f_namemax=255)

    @locked
    def readdir(self, path, fh):
        node = self._node(path, fh)
        if not node.is_dir():
            raise FuseOSError(errno.ENOTDIR)
        out = ['.', '..']
        out.extend(node.entries.keys())
        return out

    @locked
    def opendir(self, path):
        node = self._lookup(path)
        if not node.is_dir():
            raise FuseOSError(errno.ENOTDIR)
        return self._open_handle(node, os.O_RDONLY)

    @locked
    def releasedir(self, path, fh):
        self._close_handle(fh)
        return 0

    @locked
    def fsyncdir(self, path, datasync, fh):
        node = self._node(path, fh)
        self._sync_dir(node)
        self.counts['fsyncdir'] += 1
        self._log('fsyncdir', path)
        return 0

    def _open_handle(self, node, flags):
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = Handle(node, flags)
        node.opens += 1
        self.counts['opens'] += 1
        if flags & getattr(os, 'O_DIRECT', 0):
            self.counts['directOpens'] += 1
        return fh

    def _close_handle(self, fh):
        h = self.handles.pop(fh, None)  # unknown: opened before a cut
        if h is not None:
            h.node.opens -= 1
            self._maybe_free(h.node)

    @locked
    def open(self, path, fi):
        node = self._lookup(path)
        if node.data is None:
            raise FuseOSError(errno.EISDIR if node.is_dir() else errno.EINVAL)
        fi.fh = self._open_handle(node, fi.flags)
        # no keep_cache: the kernel drops this file's page cache at every open, so a
        # process opening the file after a cut reads the reverted content
        fi.keep_cache = 0
        fi.direct_io = 0
        return 0

    @locked
    def create(self, path, mode, fi):
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if node is not None:
            if fi.flags & os.O_EXCL:
                raise FuseOSError(errno.EEXIST)
        else:
            node = self._new(stat.S_IFREG | (mode & 0o7777))
            self._register(node)
            self._link(parent, name, node)
            self._log('create', path)
        fi.fh = self._open_handle(node, fi.flags)
        fi.keep_cache = 0
        fi.direct_io = 0
        return 0

    @locked
    def mknod(self, path, mode, dev):
        if not stat.S_ISREG(mode):
            raise FuseOSError(errno.EPERM)
        parent, name = self._parent(path)
        if name in parent.entries:
            raise FuseOSError(errno.EEXIST)
        node = self._new(stat.S_IFREG | (mode & 0o7777))
        self._register(node)
        self._link(parent, name, node)
        return 0

    @locked
    def flush(self, path, fi):
        return 0  # close() is not a durability point

    @locked
    def release(self, path, fi):
        self._close_handle(fi.fh)
        return 0

    @locked
    def read(self, path, size, offset, fi):
        buf = self._handle(fi).node.data
        return bytes(buf[offset:offset + size])

    @locked
    def write(self, path, data, offset, fi):
        node = self._handle(fi).node
        # O_APPEND needs nothing here: the kernel sends the offset of its end of file
        buf = node.data
        n = len(data)
        old = len(buf)
        end = offset + n
        if end > old:
            if self.vbytes + end - old > self.size:
                raise FuseOSError(errno.ENOSPC)
            if offset > old:
                buf.extend(bytes(offset - old))  # a hole reads as zeros
            self.vbytes += end - old
        buf[offset:end] = data
        self._mark(node, min(offset, old), end)
        node.mtime = node.ctime = now_ns()
        self.counts['writes'] += 1
        self.counts['bytesWritten'] += n
        return n

    @locked
    def truncate(self, path, length, fi=None):
        node = self._node(path, fi)
        if node.data is None:
            raise FuseOSError(errno.EISDIR if node.is_dir() else errno.EINVAL)
        self._resize(node, length)
        node.mtime = node.ctime = now_ns()
        return 0

    @locked
    def fallocate(self, path, mode, offset, length, fi):
        node = self._node(path, fi)
        if node.data is None:
            raise FuseOSError(errno.ENODEV)
        self.counts['fallocate'] += 1
        end = offset + length
        keep = mode & FALLOC_FL_KEEP_SIZE
        rest = mode & ~FALLOC_FL_KEEP_SIZE
        if rest == 0:
            # space is not modelled: allocating only grows the size (unless KEEP_SIZE)
            if not keep and end > len(node.data):
                self._resize(node, end)
        elif rest in (FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE):
            if rest == FALLOC_FL_PUNCH_HOLE and not keep:
                raise FuseOSError(errno.EOPNOTSUPP)
            if not keep and end > len(node.data):
                self._resize(node, end)
            hi = min(end, len(node.data))
            if offset < hi:
                node.data[offset:hi] = bytes(hi - offset)
                self._mark(node, offset, hi)
        else:
            raise FuseOSError(errno.EOPNOTSUPP)
        node.mtime = node.ctime = now_ns()
        return 0

    @locked
    def fsync(self, path, datasync, fi):
        node = self._node(path, fi)
        if node.data is not None:
            self._sync_data(node)
        if node.entries is not None:
            self._sync_dir(node)
        if not datasync:
            node.d_meta = node.meta()
        self.counts['fdatasync' if datasync else 'fsync'] += 1
        self._log('fdatasync' if datasync else 'fsync', path)
        return 0

    @locked
    def mkdir(self, path, mode):
        parent, name = self._parent(path)
        if name in parent.entries:
            raise FuseOSError(errno.EEXIST)
        node = self._new(stat.S_IFDIR | (mode & 0o7777))
        self._register(node)
        self._link(parent, name, node)
        self._log('mkdir', path)
        return 0

    @locked
    def rmdir(self, path):
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if node is None:
            raise FuseOSError(errno.ENOENT)
        if not node.is_dir():
            raise FuseOSError(errno.ENOTDIR)
        if node.entries:
            raise FuseOSError(errno.ENOTEMPTY)
        self._unlink(parent, name)
        self._maybe_free(node)
        self._log('rmdir', path)
        return 0

    @locked
    def unlink(self, path):
        parent, name = self._parent(path)
        node = parent.hidden.pop(name, None)
        if node is not None:
            # libfuse removing a hidden name at the last close: the real unlink came before
            self._maybe_free(node)
            return 0
        node = parent.entries.get(name)
        if node is None:
            raise FuseOSError(errno.ENOENT)
        if node.is_dir():
            raise FuseOSError(errno.EISDIR)
        self._unlink(parent, name)
        self._maybe_free(node)
        self._log('unlink', path)
        return 0

    @locked
    def rename(self, old, new):
        op, on = self._parent(old)
        np, nn = self._parent(new)
        node = op.entries.get(on)
        if node is None:
            raise FuseOSError(errno.ENOENT)
        if nn.startswith(HIDDEN) and np is op and not node.is_dir():
            # libfuse hides a file that is unlinked (or renamed over) while open: to our
            # model that is the unlink; the hidden name only serves lookups until the close
            self._unlink(op, on)
            op.hidden[nn] = node
            self._log('hide', old)
            return 0
        target = np.entries.get(nn)
        if target is node:
            return 0  # two names of one inode: POSIX says do nothing
        if node.is_dir():
            if new.startswith(old + '/'):
                raise FuseOSError(errno.EINVAL)
            if target is not None:
                if not target.is_dir():
                    raise FuseOSError(errno.ENOTDIR)
                if target.entries:
                    raise FuseOSError(errno.ENOTEMPTY)
        elif target is not None and target.is_dir():
            raise FuseOSError(errno.EISDIR)
        # atomic in the volatile layer; the durable names change at each parent's fsync
        self._unlink(op, on)
        if target is not None:
            self._unlink(np, nn)
        self._link(np, nn, node)
        if target is not None:
            self._maybe_free(target)
        self._log('rename', old, new)
        return 0

    @locked
    def link(self, target, source):
        node = self._lookup(source)
        if node.is_dir():
            raise FuseOSError(errno.EPERM)
        parent, name = self._parent(target)
        if name in parent.entries:
            raise FuseOSError(errno.EEXIST)
        self._link(parent, name, node)
        node.ctime = now_ns()
        return 0

    @locked
    def symlink(self, target, source):
        parent, name = self._parent(target)
        if name in parent.entries:
            raise FuseOSError(errno.EEXIST)
        node = self._new(stat.S_IFLNK | 0o777)
        node.target = source
        self._register(node)
        self._link(parent, name, node)
        return 0

    @locked
    def readlink(self, path):
        node = self._lookup(path)
        if node.target is None:
            raise FuseOSError(errno.EINVAL)
        return node.target

    @locked
    def chmod(self, path, mode):
        node = self._lookup(path)
        node.mode = stat.S_IFMT(node.mode) | (mode & 0o7777)
        node.ctime = now_ns()
        return 0

    @locked
    def chown(self, path, uid, gid):
        node = self._lookup(path)
        if uid != -1:
            node.uid = uid
        if gid != -1:
            node.gid = gid
        node.ctime = now_ns()
        return 0

    @locked
    def utimens(self, path, times=None):
        node = self._lookup(path)
        t = now_ns()
        node.atime, node.mtime = times if times is not None else (t, t)
        node.ctime = t
        return 0


_out_lock = threading.Lock()


def reply(line):
    with _out_lock:
        sys.stdout.write(line + '\n')
        sys.stdout.flush()


def control(fs, mountpoint, main_ident):
    """Reads commands from stdin. At end of input the controller is gone: unmount, so a
    test process that died leaves no mount behind."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    fs.ready.wait()
    reply('ready ' + mountpoint)
    for line in sys.stdin:
        cmd = line.strip()
        if not cmd:
            continue
        try:
            if cmd == 'cut':
                reply('cut %d' % fs.cut())
            elif cmd == 'stats':
                reply('stats ' + json.dumps(fs.stats()))
            elif cmd == 'sync':
                fs.sync_all()
                reply('sync')
            elif cmd == 'ping':
                reply('pong')
            else:
                reply('error unknown command: ' + cmd)
        except Exception as e:  # an answer for every command, so the caller never hangs
            reply('error %s: %s' % (type(e).__name__, e))
    # libfuse's SIGTERM handler ends its loop, which then unmounts; the signal must reach
    # the main thread, which waits in that loop
    signal.pthread_kill(main_ident, signal.SIGTERM)
    time.sleep(5)
    for tool in ('fusermount3', 'fusermount'):
        try:
            subprocess.run([tool, '-u', '-z', mountpoint], stderr=subprocess.DEVNULL)
            break
        except FileNotFoundError:
            continue
    os._exit(1)


def main():
    ap = argparse.ArgumentParser(description='FUSE file system with power cuts')
    ap.add_argument('mountpoint')
    ap.add_argument('--size', type=int, default=64 << 30, help='capacity in bytes (statfs, ENOSPC)')
    ap.add_argument('--trace', action='store_true', help='log namespace ops and syncs to stderr')
    args = ap.parse_args()
    mountpoint = os.path.abspath(args.mountpoint)
    fs = PowerCutFS(args.size, args.trace or os.environ.get('POWERCUT_TRACE') == '1')
    threading.Thread(target=control, args=(fs, mountpoint, threading.main_thread().ident),
                     daemon=True).start()
    FUSE = _with_fallocate()
    FUSE(fs, mountpoint, raw_fi=True, foreground=True, nothreads=False,
         fsname='powercutfs', subtype='powercut',
         # our inode numbers in st_ino. No hard_remove: libfuse 2 then renames a file
         # unlinked while open to .fuse_hidden* (handled in rename), and the kernel's fstat,
         # which comes without a file handle, still finds it by that path
         use_ino=True,
         # without big_writes libfuse 2 gets 4 KiB writes
         big_writes=True, max_write=131072,
         # no cached names or attributes: after a cut the next lookup asks us
         attr_timeout=0, entry_timeout=0, negative_timeout=0,
         default_permissions=True)


if __name__ == '__main__':
    main()
