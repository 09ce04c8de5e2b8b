"""WASI preview 1 (`wasi_snapshot_preview1`) for deadeye stores.

Pieces:
- `WasiConfig`: what the guest sees (argv, environment, stdio, preopened directories),
  shaped like wasmtime-py's class of the same name.
- `WasiCtx`: the running state built from a config (the fd table, clocks...). Each
  preview-1 function is a method taking a `GuestMemory` and the raw i32/i64 arguments
  (unsigned bit patterns) and returning an errno; unit tests call them directly.
- `host_functions()`: every preview-1 import as a runtime `HostFunction`; the ones not
  implemented here return ENOSYS so that any WASI program links. They find their context
  through the store (`attach`), and guest memory through the calling instance's
  `memory` export.
- `run_command(...)`: instantiate a WASI command, run `_start`, return its exit status
  (used by `deadeye run`).

Sandbox: the host file system is reachable only through preopened directories. Guest
paths are resolved here component by component with directory file descriptors
(`dir_fd=`, `O_NOFOLLOW`), never handed to the host as a whole: `..` cannot leave the
directory fd the path is relative to, absolute paths and absolute symlink targets are
refused with ENOTCAPABLE, and symlinks are expanded by us (at most 40 per lookup, ELOOP
after that), so a link can only lead to places the guest could name anyway.

Struct layouts, flags and errno values follow the preview-1 witx definitions
(little-endian, natural alignment)."""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat
import struct
import sys
import time
import weakref
from enum import IntEnum
from typing import Any, Callable, Iterable, Sequence

from deadeye.interp import runtime as _rt
from deadeye.ir.errors import ExitTrap, Trap, WasmError
from deadeye.ir.types import FuncType, ValType

MODULE = "wasi_snapshot_preview1"

# -- errno ----------------------------------------------------------------------------

# Preview-1 errno names in value order (the value is the position). Most share their
# name with a POSIX errno, which gives the host -> WASI mapping below.
_ERRNO_NAMES = (
    "success 2big acces addrinuse addrnotavail afnosupport again already badf badmsg busy "
    "canceled child connaborted connrefused connreset deadlk destaddrreq dom dquot exist "
    "fault fbig hostunreach idrm ilseq inprogress intr inval io isconn isdir loop mfile "
    "mlink msgsize multihop nametoolong netdown netreset netunreach nfile nobufs nodev "
    "noent noexec nolck nolink nomem nomsg noprotoopt nospc nosys notconn notdir notempty "
    "notrecoverable notsock notsup notty nxio overflow ownerdead perm pipe proto "
    "protonosupport prototype range rofs spipe srch stale timedout txtbsy xdev notcapable"
).split()

Errno = IntEnum("Errno", [("E" + n.upper(), i) for i, n in enumerate(_ERRNO_NAMES)])
Errno.__doc__ = "WASI preview-1 errno values (Errno.EBADF == 8, Errno.ENOTCAPABLE == 76...)."

_HOST_ERRNO: dict[int, int] = {}
for _i, _n in enumerate(_ERRNO_NAMES):
    _code = getattr(_errno, "E" + _n.upper(), None)
    if _code is not None:
        _HOST_ERRNO.setdefault(_code, _i)
# Aliases some hosts define as distinct values.
for _alias, _target in (("EWOULDBLOCK", Errno.EAGAIN), ("EOPNOTSUPP", Errno.ENOTSUP)):
    if hasattr(_errno, _alias):
        _HOST_ERRNO.setdefault(getattr(_errno, _alias), int(_target))


def host_errno(e: OSError) -> int:
    """The WASI errno for a host OSError (EIO when it has no WASI counterpart)."""
    return _HOST_ERRNO.get(e.errno, int(Errno.EIO)) if e.errno else int(Errno.EIO)


class _Err(Exception):
    """Internal: abort the current WASI call with an errno."""

    def __init__(self, code: int):
        self.code = int(code)


# -- enums, flags, rights ---------------------------------------------------------------


class Filetype(IntEnum):
    UNKNOWN = 0
    BLOCK_DEVICE = 1
    CHARACTER_DEVICE = 2
    DIRECTORY = 3
    REGULAR_FILE = 4
    SOCKET_DGRAM = 5
    SOCKET_STREAM = 6
    SYMBOLIC_LINK = 7


# fdflags
FDFLAG_APPEND, FDFLAG_DSYNC, FDFLAG_NONBLOCK, FDFLAG_RSYNC, FDFLAG_SYNC = 1, 2, 4, 8, 16
# oflags
O_CREAT, O_DIRECTORY, O_EXCL, O_TRUNC = 1, 2, 4, 8
# lookupflags
LOOKUP_SYMLINK_FOLLOW = 1
# clocks
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME, CLOCK_THREAD_CPUTIME = 0, 1, 2, 3
# poll
EVENTTYPE_CLOCK, EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE = 0, 1, 2
SUBCLOCK_ABSTIME = 1

# Rights, bit i = the i-th name (preview-1 order).
_RIGHT_NAMES = (
    "fd_datasync fd_read fd_seek fd_fdstat_set_flags fd_sync fd_tell fd_write fd_advise "
    "fd_allocate path_create_directory path_create_file path_link_source path_link_target "
    "path_open fd_readdir path_readlink path_rename_source path_rename_target "
    "path_filestat_get path_filestat_set_size path_filestat_set_times fd_filestat_get "
    "fd_filestat_set_size fd_filestat_set_times path_symlink path_remove_directory "
    "path_unlink_file poll_fd_readwrite sock_shutdown sock_accept"
).split()
RIGHTS = {name: 1 << i for i, name in enumerate(_RIGHT_NAMES)}
R = type("R", (), {n.upper(): v for n, v in RIGHTS.items()})  # R.FD_READ ...


def _rights(names: str) -> int:
    out = 0
    for n in names.split():
        out |= RIGHTS[n]
    return out


FILE_RIGHTS = _rights(
    "fd_datasync fd_read fd_seek fd_fdstat_set_flags fd_sync fd_tell fd_write fd_advise "
    "fd_allocate fd_filestat_get fd_filestat_set_size fd_filestat_set_times poll_fd_readwrite")
DIR_RIGHTS = _rights(
    "fd_fdstat_set_flags fd_sync fd_advise path_create_directory path_create_file "
    "path_link_source path_link_target path_open fd_readdir path_readlink path_rename_source "
    "path_rename_target path_filestat_get path_filestat_set_size path_filestat_set_times "
    "fd_filestat_get fd_filestat_set_times path_symlink path_remove_directory "
    "path_unlink_file poll_fd_readwrite")
# Rights that change the file system; a read-only preopen (`fs_mutable=False`) lacks them.
MUTATING_RIGHTS = _rights(
    "fd_datasync fd_write fd_allocate fd_filestat_set_size fd_filestat_set_times "
    "path_create_directory path_create_file path_link_target path_rename_source "
    "path_rename_target path_filestat_set_size path_filestat_set_times path_symlink "
    "path_remove_directory path_unlink_file")
# Which rights make path_open ask the host for read and for write access (as wasi-libc
# derives them from O_RDONLY/O_WRONLY).
_READ_RIGHTS = _rights("fd_read fd_readdir")
_WRITE_RIGHTS = _rights("fd_write fd_datasync fd_allocate fd_filestat_set_size")

# -- struct layouts (little-endian, natural alignment) -----------------------------------

IOVEC = struct.Struct("<II")  # buf, buf_len
FDSTAT = struct.Struct("<BxHxxxxQQ")  # filetype, flags, rights_base, rights_inheriting
FILESTAT = struct.Struct("<QQB7xQQQQQ")  # dev, ino, filetype, nlink, size, atim, mtim, ctim
PRESTAT = struct.Struct("<BxxxI")  # tag (0 = dir), name length
DIRENT = struct.Struct("<QQIB3x")  # d_next, d_ino, d_namlen, d_type
SUBSCRIPTION = struct.Struct("<QB7x32s")  # userdata, tag, union
SUB_CLOCK = struct.Struct("<I4xQQH")  # id, timeout, precision, flags
SUB_FD = struct.Struct("<I")  # file descriptor
EVENT = struct.Struct("<QHB5xQH6x")  # userdata, error, type, nbytes, flags
assert (IOVEC.size, FDSTAT.size, FILESTAT.size, PRESTAT.size, DIRENT.size,
        SUBSCRIPTION.size, EVENT.size) == (8, 24, 64, 8, 24, 48, 32)

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

# One call moves at most this much (a short read/write is allowed; it bounds the host
# memory a guest can make us allocate with overlapping iovecs).
_MAX_IO = 64 << 20
_MAX_SYMLINKS = 40


# -- guest memory -------------------------------------------------------------------------


class GuestMemory:
    """Bounds-checked little-endian access to a guest's linear memory. `source` is any
    object with a `data` bytearray (a runtime `MemoryInstance`), read on every access
    because growing a memory may replace it. Out-of-bounds access raises EFAULT."""

    __slots__ = ("_source",)

    def __init__(self, source: Any):
        self._source = source

    @property
    def data(self) -> bytearray:
        return self._source.data

    def check(self, addr: int, n: int) -> bytearray:
        data = self._source.data
        if addr < 0 or n < 0 or addr + n > len(data):
            raise _Err(Errno.EFAULT)
        return data

    def read(self, addr: int, n: int) -> bytes:
        data = self.check(addr, n)
        return bytes(data[addr : addr + n])

    def write(self, addr: int, b: bytes) -> None:
        data = self.check(addr, len(b))
        data[addr : addr + len(b)] = b

    def unpack(self, st: struct.Struct, addr: int) -> tuple:
        return st.unpack_from(self.check(addr, st.size), addr)

    def pack(self, st: struct.Struct, addr: int, *values: Any) -> None:
        st.pack_into(self.check(addr, st.size), addr, *values)

    def u32(self, addr: int) -> int:
        return self.unpack(_U32, addr)[0]

    def set_u16(self, addr: int, v: int) -> None:
        self.pack(_U16, addr, v)

    def set_u32(self, addr: int, v: int) -> None:
        self.pack(_U32, addr, v)

    def set_u64(self, addr: int, v: int) -> None:
        self.pack(_U64, addr, v)

    def iovecs(self, iovs: int, n: int) -> list[tuple[int, int]]:
        """The (buf, len) pairs of an iovec array, each checked to lie in memory."""
        raw = self.read(iovs, IOVEC.size * n)
        out = list(IOVEC.iter_unpack(raw))
        for buf, length in out:
            self.check(buf, length)
        return out


class _CallerMemory:
    """The memory of the instance calling a host function: its `memory` export."""

    __slots__ = ("_store",)

    def __init__(self, store: _rt.Store):
        self._store = store

    @property
    def data(self) -> bytearray:
        inst = self._store.current_instance()
        mem = None if inst is None else inst.exports.get("memory")
        if not isinstance(mem, _rt.MemoryInstance):
            raise Trap("WASI function called by a module without a `memory` export")
        return mem.data


# -- configuration ------------------------------------------------------------------------


def _text(value: Any, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


class WasiConfig:
    """What a WASI program sees. As wasmtime-py's `WasiConfig`: `argv`, `env` (pairs),
    `inherit_argv/env/stdin/stdout/stderr()`, `stdin_file`, `stdout_file`, `stderr_file`
    (paths), `stdout_custom`/`stderr_custom` (a callable given each written `bytes`),
    `preopen_dir(host_path, guest_path, fs_mutable=True)`. Without inheritance or a file,
    stdin reads as empty and stdout/stderr discard what is written."""

    def __init__(self, argv: Sequence[str] | None = None,
                 env: Iterable[Iterable[str]] | None = None):
        self._argv: list[bytes] = []
        self._env: list[bytes] = []
        self._inherit_argv = False
        self._inherit_env = False
        # per stream: ("null",) | ("inherit",) | ("file", path) | ("custom", callable)
        self._stdio: list[tuple] = [("null",), ("null",), ("null",)]
        self.preopens: list[tuple[str, str, bool]] = []
        if argv is not None:
            self.argv = argv
        if env is not None:
            self.env = env

    @property
    def argv(self) -> list[str]:
        return [a.decode("utf-8", "surrogateescape") for a in self._argv]

    @argv.setter
    def argv(self, argv: Sequence[str]) -> None:
        if isinstance(argv, (str, bytes)):
            raise TypeError("argv must be a list of strings")
        self._argv = [_text(a, "an argument") for a in argv]
        for a in self._argv:
            if b"\0" in a:
                raise WasmError("an argument may not contain a NUL byte")
        self._inherit_argv = False

    def inherit_argv(self) -> None:
        self._inherit_argv = True

    @property
    def env(self) -> list[tuple[str, str]]:
        return [tuple(e.decode("utf-8", "surrogateescape").split("=", 1)) for e in self._env]  # type: ignore[misc]

    @env.setter
    def env(self, pairs: Iterable[Iterable[str]]) -> None:
        out = []
        for pair in pairs:
            k, v = pair
            kb, vb = _text(k, "an environment name"), _text(v, "an environment value")
            if b"=" in kb or b"\0" in kb or b"\0" in vb:
                raise WasmError(f"invalid environment variable {k!r}")
            out.append(kb + b"=" + vb)
        self._env = out
        self._inherit_env = False

    def inherit_env(self) -> None:
        self._inherit_env = True

    def inherit_stdin(self) -> None:
        self._stdio[0] = ("inherit",)

    def inherit_stdout(self) -> None:
        self._stdio[1] = ("inherit",)

    def inherit_stderr(self) -> None:
        self._stdio[2] = ("inherit",)

    def _set_file(self, i: int, path: Any) -> None:
        path = os.fspath(path)
        if i == 0 and not os.path.isfile(path):
            raise WasmError(f"stdin file {path!r} does not exist")
        self._stdio[i] = ("file", path)

    stdin_file = property(lambda self: self._stream_path(0), lambda self, p: self._set_file(0, p))
    stdout_file = property(lambda self: self._stream_path(1), lambda self, p: self._set_file(1, p))
    stderr_file = property(lambda self: self._stream_path(2), lambda self, p: self._set_file(2, p))

    def _stream_path(self, i: int) -> Any:
        s = self._stdio[i]
        return s[1] if s[0] == "file" else None

    def _set_custom(self, i: int, callback: Callable[[bytes], Any]) -> None:
        if not callable(callback):
            raise TypeError("expected a callable taking bytes")
        self._stdio[i] = ("custom", callback)

    stdout_custom = property(None, lambda self, cb: self._set_custom(1, cb))
    stderr_custom = property(None, lambda self, cb: self._set_custom(2, cb))

    def preopen_dir(self, path: Any, guest_path: str, fs_mutable: bool = True) -> None:
        """Give the guest the host directory `path` under the name `guest_path`;
        `fs_mutable=False` makes it (and everything opened through it) read-only."""
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise WasmError(f"cannot preopen {path!r}: not a directory")
        if not isinstance(guest_path, str):
            raise TypeError("guest_path must be a str")
        self.preopens.append((path, guest_path, bool(fs_mutable)))


# -- file descriptors -----------------------------------------------------------------------


class _Fd:
    """One entry of the guest's fd table. `host` is a host file descriptor (None for
    the null stream and custom outputs); `owned` says whether closing the entry closes
    it (inherited stdio is not ours)."""

    __slots__ = ("host", "owned", "filetype", "rights", "inheriting", "flags", "preopen",
                 "sink")

    def __init__(self, host: int | None, filetype: int, rights: int, inheriting: int = 0,
                 flags: int = 0, owned: bool = True, preopen: bytes | None = None,
                 sink: Callable[[bytes], Any] | None = None):
        self.host = host
        self.owned = owned
        self.filetype = filetype
        self.rights = rights
        self.inheriting = inheriting
        self.flags = flags
        self.preopen = preopen
        self.sink = sink

    def close(self) -> None:
        if self.owned and self.host is not None:
            try:
                os.close(self.host)
            except OSError:
                pass
        self.host = None


def _filetype(mode: int) -> int:
    for test, ft in ((_stat.S_ISDIR, Filetype.DIRECTORY), (_stat.S_ISREG, Filetype.REGULAR_FILE),
                     (_stat.S_ISLNK, Filetype.SYMBOLIC_LINK),
                     (_stat.S_ISCHR, Filetype.CHARACTER_DEVICE),
                     (_stat.S_ISBLK, Filetype.BLOCK_DEVICE),
                     (_stat.S_ISSOCK, Filetype.SOCKET_STREAM)):
        if test(mode):
            return int(ft)
    return int(Filetype.UNKNOWN)


def _filestat(st: os.stat_result) -> tuple:
    return (st.st_dev & (2**64 - 1), st.st_ino & (2**64 - 1), _filetype(st.st_mode),
            st.st_nlink, st.st_size, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)


class _Resolved:
    """A resolved guest path: `name` (bytes, no slash) inside host directory `dirfd`.
    Closing releases the directories opened on the way (not the starting one)."""

    __slots__ = ("dirfd", "name", "_opened")

    def __init__(self, dirfd: int, name: bytes, opened: list[int]):
        self.dirfd = dirfd
        self.name = name
        self._opened = opened

    def __enter__(self) -> "_Resolved":
        return self

    def __exit__(self, *exc: Any) -> None:
        for fd in self._opened:
            os.close(fd)
        self._opened = []


_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def resolve(base: int, path: bytes, follow: bool) -> _Resolved:
    """Resolve guest `path` relative to the host directory fd `base` without leaving it.
    Returns the directory holding the last component and that component (b"." when the
    path names a directory itself, e.g. "a/.."). The final component is a symlink only
    when `follow` is false; it may not exist (for creation). Raises `_Err`."""
    if not path:
        raise _Err(Errno.ENOENT)
    if b"\0" in path:
        raise _Err(Errno.EINVAL)
    try:
        path.decode("utf-8")
    except UnicodeDecodeError:
        raise _Err(Errno.EILSEQ) from None
    if path.startswith(b"/"):
        raise _Err(Errno.ENOTCAPABLE)
    # Components still to walk, in reverse (pop from the end).
    pending = [c for c in reversed(path.split(b"/")) if c not in (b"", b".")]
    # A trailing slash asks for a directory (and follows a final symlink).
    want_dir = path.endswith(b"/")
    stack = [base]
    links = 0
    try:
        while pending:
            comp = pending.pop()
            if comp == b"..":
                if len(stack) == 1:
                    raise _Err(Errno.ENOTCAPABLE)
                os.close(stack.pop())
                continue
            last = not pending
            if last and not follow and not want_dir:
                return _Resolved(stack[-1], comp, stack[1:])
            try:
                st = os.stat(comp, dir_fd=stack[-1], follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return _Resolved(stack[-1], comp, stack[1:])
                raise _Err(Errno.ENOENT) from None
            if _stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise _Err(Errno.ELOOP)
                target = os.readlink(comp, dir_fd=stack[-1])
                if target.startswith(b"/"):
                    raise _Err(Errno.ENOTCAPABLE)
                if target.endswith(b"/") and last:
                    want_dir = True
                pending.extend(c for c in reversed(target.split(b"/")) if c not in (b"", b"."))
                continue
            if last:
                if want_dir and not _stat.S_ISDIR(st.st_mode):
                    raise _Err(Errno.ENOTDIR)
                return _Resolved(stack[-1], comp, stack[1:])
            if not _stat.S_ISDIR(st.st_mode):
                raise _Err(Errno.ENOTDIR)
            stack.append(os.open(comp, _DIR_OPEN, dir_fd=stack[-1]))
        return _Resolved(stack[-1], b".", stack[1:])
    except BaseException:
        for fd in stack[1:]:
            os.close(fd)
        raise


# -- the context ------------------------------------------------------------------------------

_CLOCKS = {
    CLOCK_REALTIME: (time.time_ns, "time"),
    CLOCK_MONOTONIC: (time.monotonic_ns, "monotonic"),
    CLOCK_PROCESS_CPUTIME: (time.process_time_ns, "process_time"),
    CLOCK_THREAD_CPUTIME: (time.thread_time_ns, "thread_time"),
}


FST_ATIM, FST_ATIM_NOW, FST_MTIM, FST_MTIM_NOW = 1, 2, 4, 8


def _set_times(st: os.stat_result, atim: int, mtim: int, fst_flags: int) -> tuple[int, int]:
    """The (atime, mtime) in ns that fst_flags ask for, keeping the ones not named."""
    if fst_flags & ~0xF or (fst_flags & FST_ATIM and fst_flags & FST_ATIM_NOW) or \
            (fst_flags & FST_MTIM and fst_flags & FST_MTIM_NOW):
        raise _Err(Errno.EINVAL)
    now = time.time_ns()
    a = atim if fst_flags & FST_ATIM else now if fst_flags & FST_ATIM_NOW else st.st_atime_ns
    m = mtim if fst_flags & FST_MTIM else now if fst_flags & FST_MTIM_NOW else st.st_mtime_ns
    return a, m


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


class WasiCtx:
    """The running WASI state of one store. Methods named after preview-1 functions take
    a `GuestMemory` and the raw arguments and return an errno (raising `_Err` inside is
    the same as returning its code; host OSErrors are mapped by `call`)."""

    def __init__(self, config: WasiConfig):
        if not isinstance(config, WasiConfig):
            raise TypeError("expected a deadeye.WasiConfig")
        if config._inherit_argv:
            self.args = [os.fsencode(a) for a in sys.argv]
        else:
            self.args = list(config._argv)
        if config._inherit_env:
            self.env = [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in os.environ.items()]
        else:
            self.env = list(config._env)
        self.fds: dict[int, _Fd] = {}
        try:
            for i, spec in enumerate(config._stdio):
                self.fds[i] = self._stdio(i, spec)
            for host_path, guest_path, mutable in config.preopens:
                h = os.open(host_path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
                allowed = ~0 if mutable else ~MUTATING_RIGHTS
                self.fds[len(self.fds)] = _Fd(
                    h, Filetype.DIRECTORY, DIR_RIGHTS & allowed,
                    (DIR_RIGHTS | FILE_RIGHTS) & allowed, preopen=guest_path.encode("utf-8"))
        except OSError as e:
            self.close()
            raise WasmError(f"cannot set up WASI: {e.strerror}: {e.filename}") from None

    @staticmethod
    def _stdio(i: int, spec: tuple) -> _Fd:
        side = _rights("fd_read") if i == 0 else _rights("fd_write fd_datasync fd_sync")
        base = side | _rights("fd_fdstat_set_flags fd_filestat_get poll_fd_readwrite")
        kind = spec[0]
        if kind == "null" or kind == "custom":
            return _Fd(None, Filetype.CHARACTER_DEVICE, base, owned=False,
                       sink=spec[1] if kind == "custom" else None)
        if kind == "inherit":
            host, owned = i, False
        else:
            flags = os.O_RDONLY if i == 0 else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            host, owned = os.open(spec[1], flags | getattr(os, "O_CLOEXEC", 0), 0o666), True
        try:
            mode = os.fstat(host).st_mode
        except OSError:  # an inherited stream the host process does not have
            return _Fd(None, Filetype.CHARACTER_DEVICE, base, owned=False)
        if _stat.S_ISREG(mode):
            base |= _rights("fd_seek fd_tell")
        return _Fd(host, _filetype(mode), base, owned=owned)

    def close(self) -> None:
        """Close every host descriptor the guest still holds."""
        for fd in self.fds.values():
            fd.close()
        self.fds.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- helpers ------------------------------------------------------------------------
    def _fd(self, fd: int, rights: int = 0) -> _Fd:
        entry = self.fds.get(fd)
        if entry is None:
            raise _Err(Errno.EBADF)
        if rights & ~entry.rights:
            raise _Err(Errno.ENOTCAPABLE)
        return entry

    def _dir(self, fd: int, rights: int) -> _Fd:
        entry = self._fd(fd)
        if entry.filetype != Filetype.DIRECTORY or entry.host is None:
            raise _Err(Errno.ENOTDIR)
        if rights & ~entry.rights:
            raise _Err(Errno.ENOTCAPABLE)
        return entry

    def _path(self, mem: GuestMemory, ptr: int, n: int) -> bytes:
        return mem.read(ptr, n)

    def _new_fd(self, entry: _Fd) -> int:
        n = 0
        while n in self.fds:
            n += 1
        self.fds[n] = entry
        return n

    @staticmethod
    def _gather(mem: GuestMemory, iovs: int, n: int) -> bytes:
        out = bytearray()
        data = mem.data
        for buf, length in mem.iovecs(iovs, n):
            take = min(length, _MAX_IO - len(out))
            out += data[buf : buf + take]
            if len(out) >= _MAX_IO:
                break
        return bytes(out)

    @staticmethod
    def _scatter(mem: GuestMemory, vecs: list[tuple[int, int]], data: bytes) -> None:
        pos = 0
        for buf, length in vecs:
            if pos >= len(data):
                break
            chunk = data[pos : pos + length]
            mem.write(buf, chunk)
            pos += len(chunk)

    # -- args, environment ----------------------------------------------------------------
    @staticmethod
    def _put_strings(mem: GuestMemory, items: list[bytes], ptrs: int, buf: int) -> int:
        mem.check(ptrs, 4 * len(items))
        mem.check(buf, sum(len(s) + 1 for s in items))
        for i, s in enumerate(items):
            mem.set_u32(ptrs + 4 * i, buf)
            mem.write(buf, s + b"\0")
            buf += len(s) + 1
        return 0

    @staticmethod
    def _put_sizes(mem: GuestMemory, items: list[bytes], count_ptr: int, size_ptr: int) -> int:
        mem.set_u32(count_ptr, len(items))
        mem.set_u32(size_ptr, sum(len(s) + 1 for s in items))
        return 0

    def args_get(self, mem: GuestMemory, argv: int, argv_buf: int) -> int:
        return self._put_strings(mem, self.args, argv, argv_buf)

    def args_sizes_get(self, mem: GuestMemory, argc_ptr: int, size_ptr: int) -> int:
        return self._put_sizes(mem, self.args, argc_ptr, size_ptr)

    def environ_get(self, mem: GuestMemory, environ: int, environ_buf: int) -> int:
        return self._put_strings(mem, self.env, environ, environ_buf)

    def environ_sizes_get(self, mem: GuestMemory, count_ptr: int, size_ptr: int) -> int:
        return self._put_sizes(mem, self.env, count_ptr, size_ptr)

    # -- clocks, randomness, scheduling ----------------------------------------------------
    def clock_res_get(self, mem: GuestMemory, clock_id: int, out: int) -> int:
        clock = _CLOCKS.get(clock_id)
        if clock is None:
            return Errno.EINVAL
        res = max(1, round(time.get_clock_info(clock[1]).resolution * 1e9))
        mem.set_u64(out, res)
        return 0

    def clock_time_get(self, mem: GuestMemory, clock_id: int, precision: int, out: int) -> int:
        clock = _CLOCKS.get(clock_id)
        if clock is None:
            return Errno.EINVAL
        mem.set_u64(out, clock[0]() & (2**64 - 1))
        return 0

    def random_get(self, mem: GuestMemory, buf: int, n: int) -> int:
        mem.check(buf, n)
        mem.write(buf, os.urandom(n))
        return 0

    def sched_yield(self, mem: GuestMemory) -> int:
        if hasattr(os, "sched_yield"):
            os.sched_yield()
        return 0

    def proc_exit(self, mem: GuestMemory, code: int) -> None:
        raise ExitTrap(code)

    # -- reading and writing ---------------------------------------------------------------
    def _write_to(self, entry: _Fd, data: bytes, offset: int | None = None) -> int:
        if entry.host is None:
            if entry.sink is not None:
                entry.sink(data)
            return len(data)
        if offset is not None:
            return os.pwrite(entry.host, data, offset)
        if entry.filetype == Filetype.REGULAR_FILE or entry.owned:
            return os.write(entry.host, data)
        # A stream shared with the host process (inherited stdio): write it all, as
        # many guests do not retry short writes to stdout.
        done = 0
        while done < len(data):
            done += os.write(entry.host, data[done:])
        return done

    def fd_write(self, mem: GuestMemory, fd: int, iovs: int, iovs_len: int, out: int) -> int:
        entry = self._fd(fd, R.FD_WRITE)
        data = self._gather(mem, iovs, iovs_len)
        mem.check(out, 4)
        mem.set_u32(out, self._write_to(entry, data))
        return 0

    def fd_pwrite(self, mem: GuestMemory, fd: int, iovs: int, iovs_len: int, offset: int,
                  out: int) -> int:
        entry = self._fd(fd, R.FD_WRITE | R.FD_SEEK)
        if entry.host is None:
            return Errno.ESPIPE
        if offset >> 63:
            return Errno.EINVAL
        data = self._gather(mem, iovs, iovs_len)
        mem.check(out, 4)
        mem.set_u32(out, self._write_to(entry, data, offset))
        return 0

    def _read_from(self, entry: _Fd, n: int, offset: int | None = None) -> bytes:
        if entry.host is None:
            return b""
        if offset is not None:
            return os.pread(entry.host, n, offset)
        return os.read(entry.host, n)

    def _read_common(self, mem: GuestMemory, fd: int, iovs: int, iovs_len: int,
                     offset: int | None, out: int, rights: int) -> int:
        entry = self._fd(fd, rights)
        vecs = mem.iovecs(iovs, iovs_len)
        mem.check(out, 4)
        if offset is not None:
            if entry.host is None:
                return Errno.ESPIPE
            if offset >> 63:
                return Errno.EINVAL
        total = min(sum(length for _, length in vecs), _MAX_IO)
        data = self._read_from(entry, total, offset) if total else b""
        self._scatter(mem, vecs, data)
        mem.set_u32(out, len(data))
        return 0

    def fd_read(self, mem: GuestMemory, fd: int, iovs: int, iovs_len: int, out: int) -> int:
        return self._read_common(mem, fd, iovs, iovs_len, None, out, R.FD_READ)

    def fd_pread(self, mem: GuestMemory, fd: int, iovs: int, iovs_len: int, offset: int,
                 out: int) -> int:
        return self._read_common(mem, fd, iovs, iovs_len, offset, out, R.FD_READ | R.FD_SEEK)

    def fd_seek(self, mem: GuestMemory, fd: int, offset: int, whence: int, out: int) -> int:
        offset = _signed64(offset)
        need = R.FD_TELL if (offset == 0 and whence == os.SEEK_CUR) else R.FD_SEEK
        entry = self._fd(fd, need)
        if whence not in (0, 1, 2):
            return Errno.EINVAL
        mem.check(out, 8)
        if entry.host is None:
            return Errno.ESPIPE
        # WASI's whence values (set, cur, end) equal POSIX's.
        mem.set_u64(out, os.lseek(entry.host, offset, whence))
        return 0

    def fd_tell(self, mem: GuestMemory, fd: int, out: int) -> int:
        entry = self._fd(fd, R.FD_TELL)
        mem.check(out, 8)
        if entry.host is None:
            return Errno.ESPIPE
        mem.set_u64(out, os.lseek(entry.host, 0, os.SEEK_CUR))
        return 0

    def fd_sync(self, mem: GuestMemory, fd: int) -> int:
        entry = self._fd(fd, R.FD_SYNC)
        if entry.host is not None and entry.owned:
            os.fsync(entry.host)
        return 0

    def fd_datasync(self, mem: GuestMemory, fd: int) -> int:
        entry = self._fd(fd, R.FD_DATASYNC)
        if entry.host is not None and entry.owned:
            getattr(os, "fdatasync", os.fsync)(entry.host)
        return 0

    def fd_advise(self, mem: GuestMemory, fd: int, offset: int, length: int, advice: int) -> int:
        self._fd(fd, R.FD_ADVISE)
        # Advice only; valid values are 0..5 (normal ... noreuse).
        return 0 if advice <= 5 else Errno.EINVAL

    def fd_filestat_set_size(self, mem: GuestMemory, fd: int, size: int) -> int:
        entry = self._fd(fd, R.FD_FILESTAT_SET_SIZE)
        if entry.host is None or size >> 63:
            return Errno.EINVAL
        os.ftruncate(entry.host, size)
        return 0

    def fd_allocate(self, mem: GuestMemory, fd: int, offset: int, length: int) -> int:
        entry = self._fd(fd, R.FD_ALLOCATE)
        if entry.host is None or entry.filetype != Filetype.REGULAR_FILE:
            return Errno.EBADF
        if (offset | length) >> 63:
            return Errno.EINVAL
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(entry.host, offset, length)
        elif os.fstat(entry.host).st_size < offset + length:
            os.ftruncate(entry.host, offset + length)
        return 0

    def fd_filestat_set_times(self, mem: GuestMemory, fd: int, atim: int, mtim: int,
                              fst_flags: int) -> int:
        entry = self._fd(fd, R.FD_FILESTAT_SET_TIMES)
        if entry.host is None:
            return Errno.EBADF
        times = _set_times(os.fstat(entry.host), atim, mtim, fst_flags)
        os.utime(entry.host, ns=times)
        return 0

    # -- descriptors -----------------------------------------------------------------------
    def fd_close(self, mem: GuestMemory, fd: int) -> int:
        entry = self._fd(fd)
        del self.fds[fd]
        entry.close()
        return 0

    def fd_renumber(self, mem: GuestMemory, fd: int, to: int) -> int:
        entry = self._fd(fd)
        target = self._fd(to)
        if fd != to:
            target.close()
            self.fds[to] = entry
            del self.fds[fd]
        return 0

    def fd_fdstat_get(self, mem: GuestMemory, fd: int, out: int) -> int:
        entry = self._fd(fd)
        mem.pack(FDSTAT, out, entry.filetype, entry.flags, entry.rights, entry.inheriting)
        return 0

    def fd_fdstat_set_rights(self, mem: GuestMemory, fd: int, base: int, inheriting: int) -> int:
        entry = self._fd(fd)
        # Rights can only be dropped.
        if base & ~entry.rights or inheriting & ~entry.inheriting:
            return Errno.ENOTCAPABLE
        entry.rights, entry.inheriting = base, inheriting
        return 0

    def fd_fdstat_set_flags(self, mem: GuestMemory, fd: int, flags: int) -> int:
        entry = self._fd(fd, R.FD_FDSTAT_SET_FLAGS)
        if flags & ~0x1F:
            return Errno.EINVAL
        sync = FDFLAG_DSYNC | FDFLAG_RSYNC | FDFLAG_SYNC
        if (flags ^ entry.flags) & sync:
            return Errno.ENOTSUP  # the host cannot change sync modes of an open file
        if flags & FDFLAG_APPEND and not entry.rights & R.FD_WRITE:
            return Errno.ENOTCAPABLE
        if entry.host is not None and entry.owned:
            import fcntl

            cur = fcntl.fcntl(entry.host, fcntl.F_GETFL)
            cur &= ~(os.O_APPEND | os.O_NONBLOCK)
            cur |= (os.O_APPEND if flags & FDFLAG_APPEND else 0)
            cur |= (os.O_NONBLOCK if flags & FDFLAG_NONBLOCK else 0)
            fcntl.fcntl(entry.host, fcntl.F_SETFL, cur)
        entry.flags = flags
        return 0

    def fd_filestat_get(self, mem: GuestMemory, fd: int, out: int) -> int:
        entry = self._fd(fd, R.FD_FILESTAT_GET)
        mem.check(out, FILESTAT.size)
        if entry.host is None:
            mem.pack(FILESTAT, out, 0, 0, entry.filetype, 0, 0, 0, 0, 0)
        else:
            mem.pack(FILESTAT, out, *_filestat(os.fstat(entry.host)))
        return 0

    def fd_prestat_get(self, mem: GuestMemory, fd: int, out: int) -> int:
        entry = self._fd(fd)
        if entry.preopen is None:
            return Errno.EBADF
        mem.pack(PRESTAT, out, 0, len(entry.preopen))
        return 0

    def fd_prestat_dir_name(self, mem: GuestMemory, fd: int, buf: int, n: int) -> int:
        entry = self._fd(fd)
        if entry.preopen is None:
            return Errno.EBADF
        name = entry.preopen
        if n < len(name):
            return Errno.ENAMETOOLONG
        mem.write(buf, name)
        return 0

    def fd_readdir(self, mem: GuestMemory, fd: int, buf: int, buf_len: int, cookie: int,
                   out: int) -> int:
        entry = self._dir(fd, R.FD_READDIR)
        mem.check(buf, buf_len)
        mem.check(out, 4)
        here = os.fstat(entry.host)
        # "." and ".." come first, as wasi-libc's readdir shows them; ".." reports the
        # directory's own inode so nothing outside the sandbox is looked at.
        names = [b".", b".."] + sorted(os.fsencode(n) for n in os.listdir(entry.host))
        packed = bytearray()
        i = cookie
        while i < len(names) and len(packed) < buf_len:
            name = names[i]
            if i < 2:
                ino, ft = here.st_ino, Filetype.DIRECTORY
            else:
                try:
                    st = os.stat(name, dir_fd=entry.host, follow_symlinks=False)
                    ino, ft = st.st_ino, _filetype(st.st_mode)
                except OSError:  # removed since the listing
                    ino, ft = 0, Filetype.UNKNOWN
            packed += DIRENT.pack(i + 1, ino & (2**64 - 1), len(name), ft) + name
            i += 1
        packed = packed[:buf_len]
        mem.write(buf, bytes(packed))
        mem.set_u32(out, len(packed))
        return 0

    # -- paths ---------------------------------------------------------------------------
    def path_open(self, mem: GuestMemory, fd: int, dirflags: int, path: int, path_len: int,
                  oflags: int, rights_base: int, rights_inheriting: int, fdflags: int,
                  out: int) -> int:
        need = R.PATH_OPEN
        if oflags & O_CREAT:
            need |= R.PATH_CREATE_FILE
        if oflags & O_TRUNC:
            need |= R.PATH_FILESTAT_SET_SIZE
        d = self._dir(fd, need)
        p = self._path(mem, path, path_len)
        mem.check(out, 4)
        if oflags & ~0xF or fdflags & ~0x1F:
            return Errno.EINVAL
        # Asking to write where the directory cannot grant it is refused outright (libc
        # masks its request with the directory's rights, so it never trips this).
        write = rights_base & _WRITE_RIGHTS or fdflags & FDFLAG_APPEND
        if write and not d.inheriting & R.FD_WRITE:
            return Errno.ENOTCAPABLE
        # Otherwise rights never grow: the new fd gets at most what the directory passes.
        rights_base &= d.inheriting
        rights_inheriting &= d.inheriting
        read = rights_base & _READ_RIGHTS
        if oflags & O_TRUNC and not write:
            return Errno.ENOTCAPABLE
        flags = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        flags |= os.O_RDWR if (read and write) else os.O_WRONLY if write else os.O_RDONLY
        for bit, host in ((O_CREAT, os.O_CREAT), (O_DIRECTORY, os.O_DIRECTORY),
                          (O_EXCL, os.O_EXCL), (O_TRUNC, os.O_TRUNC)):
            if oflags & bit:
                flags |= host
        for bit, name in ((FDFLAG_APPEND, "O_APPEND"), (FDFLAG_DSYNC, "O_DSYNC"),
                          (FDFLAG_NONBLOCK, "O_NONBLOCK"), (FDFLAG_RSYNC, "O_RSYNC"),
                          (FDFLAG_SYNC, "O_SYNC")):
            if fdflags & bit:
                flags |= getattr(os, name, 0)
        # O_CREAT|O_EXCL never follows a final symlink (POSIX): the link itself exists.
        follow = bool(dirflags & LOOKUP_SYMLINK_FOLLOW) and \
            (oflags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL)
        with resolve(d.host, p, follow) as r:
            if p.endswith(b"/"):
                flags |= os.O_DIRECTORY
            h = os.open(r.name, flags, 0o666, dir_fd=r.dirfd)
        try:
            ft = _filetype(os.fstat(h).st_mode)
        except OSError:
            os.close(h)
            raise
        if ft == Filetype.DIRECTORY:
            entry = _Fd(h, ft, rights_base & DIR_RIGHTS, rights_inheriting, fdflags)
        else:
            entry = _Fd(h, ft, rights_base & FILE_RIGHTS, 0, fdflags)
        mem.set_u32(out, self._new_fd(entry))
        return 0

    def path_filestat_get(self, mem: GuestMemory, fd: int, flags: int, path: int,
                          path_len: int, out: int) -> int:
        d = self._dir(fd, R.PATH_FILESTAT_GET)
        p = self._path(mem, path, path_len)
        mem.check(out, FILESTAT.size)
        with resolve(d.host, p, bool(flags & LOOKUP_SYMLINK_FOLLOW)) as r:
            st = os.stat(r.name, dir_fd=r.dirfd, follow_symlinks=False)
        mem.pack(FILESTAT, out, *_filestat(st))
        return 0

    def path_create_directory(self, mem: GuestMemory, fd: int, path: int, path_len: int) -> int:
        d = self._dir(fd, R.PATH_CREATE_DIRECTORY)
        with resolve(d.host, self._path(mem, path, path_len), False) as r:
            os.mkdir(r.name, 0o777, dir_fd=r.dirfd)
        return 0

    def path_remove_directory(self, mem: GuestMemory, fd: int, path: int, path_len: int) -> int:
        d = self._dir(fd, R.PATH_REMOVE_DIRECTORY)
        with resolve(d.host, self._path(mem, path, path_len), False) as r:
            os.rmdir(r.name, dir_fd=r.dirfd)
        return 0

    def path_unlink_file(self, mem: GuestMemory, fd: int, path: int, path_len: int) -> int:
        d = self._dir(fd, R.PATH_UNLINK_FILE)
        p = self._path(mem, path, path_len)
        with resolve(d.host, p, False) as r:
            if p.endswith(b"/"):
                return Errno.ENOTDIR
            os.unlink(r.name, dir_fd=r.dirfd)
        return 0

    def path_rename(self, mem: GuestMemory, fd: int, old_path: int, old_len: int, new_fd: int,
                    new_path: int, new_len: int) -> int:
        src = self._dir(fd, R.PATH_RENAME_SOURCE)
        dst = self._dir(new_fd, R.PATH_RENAME_TARGET)
        a = self._path(mem, old_path, old_len)
        b = self._path(mem, new_path, new_len)
        with resolve(src.host, a, False) as ra, resolve(dst.host, b, False) as rb:
            os.rename(ra.name, rb.name, src_dir_fd=ra.dirfd, dst_dir_fd=rb.dirfd)
        return 0

    def path_readlink(self, mem: GuestMemory, fd: int, path: int, path_len: int, buf: int,
                      buf_len: int, out: int) -> int:
        d = self._dir(fd, R.PATH_READLINK)
        p = self._path(mem, path, path_len)
        mem.check(buf, buf_len)
        mem.check(out, 4)
        with resolve(d.host, p, False) as r:
            target = os.readlink(r.name, dir_fd=r.dirfd)
        target = target[:buf_len]
        mem.write(buf, target)
        mem.set_u32(out, len(target))
        return 0

    def path_filestat_set_times(self, mem: GuestMemory, fd: int, flags: int, path: int,
                                path_len: int, atim: int, mtim: int, fst_flags: int) -> int:
        d = self._dir(fd, R.PATH_FILESTAT_SET_TIMES)
        p = self._path(mem, path, path_len)
        with resolve(d.host, p, bool(flags & LOOKUP_SYMLINK_FOLLOW)) as r:
            st = os.stat(r.name, dir_fd=r.dirfd, follow_symlinks=False)
            times = _set_times(st, atim, mtim, fst_flags)
            os.utime(r.name, ns=times, dir_fd=r.dirfd, follow_symlinks=False)
        return 0

    def path_symlink(self, mem: GuestMemory, old_path: int, old_len: int, fd: int,
                     new_path: int, new_len: int) -> int:
        d = self._dir(fd, R.PATH_SYMLINK)
        target = self._path(mem, old_path, old_len)
        p = self._path(mem, new_path, new_len)
        # Lookups never follow a link out of the sandbox anyway; refusing absolute
        # targets keeps the guest from planting links the host would follow.
        if not target or target.startswith(b"/"):
            return Errno.ENOTCAPABLE if target else Errno.ENOENT
        if b"\0" in target:
            return Errno.EINVAL
        with resolve(d.host, p, False) as r:
            os.symlink(target, r.name, dir_fd=r.dirfd)
        return 0

    def path_link(self, mem: GuestMemory, old_fd: int, old_flags: int, old_path: int,
                  old_len: int, new_fd: int, new_path: int, new_len: int) -> int:
        src = self._dir(old_fd, R.PATH_LINK_SOURCE)
        dst = self._dir(new_fd, R.PATH_LINK_TARGET)
        a = self._path(mem, old_path, old_len)
        b = self._path(mem, new_path, new_len)
        with resolve(src.host, a, bool(old_flags & LOOKUP_SYMLINK_FOLLOW)) as ra, \
                resolve(dst.host, b, False) as rb:
            os.link(ra.name, rb.name, src_dir_fd=ra.dirfd, dst_dir_fd=rb.dirfd,
                    follow_symlinks=False)
        return 0

    # -- polling ---------------------------------------------------------------------------
    def poll_oneoff(self, mem: GuestMemory, in_: int, out: int, nsubs: int, nevents: int) -> int:
        if nsubs == 0:
            return Errno.EINVAL
        subs = mem.read(in_, SUBSCRIPTION.size * nsubs)
        mem.check(out, EVENT.size * nsubs)
        mem.check(nevents, 4)
        ready: list[tuple] = []  # (userdata, error, type, nbytes, flags)
        timers: list[tuple[int, int]] = []  # (nanoseconds from now, userdata)
        for userdata, tag, body in SUBSCRIPTION.iter_unpack(subs):
            if tag == EVENTTYPE_CLOCK:
                clock_id, timeout, _precision, flags = SUB_CLOCK.unpack_from(body)
                clock = _CLOCKS.get(clock_id)
                if clock is None:
                    ready.append((userdata, Errno.EINVAL, tag, 0, 0))
                    continue
                wait = timeout - clock[0]() if flags & SUBCLOCK_ABSTIME else timeout
                timers.append((wait, userdata))
            elif tag in (EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE):
                (fd,) = SUB_FD.unpack_from(body)
                entry = self.fds.get(fd)
                if entry is None:
                    ready.append((userdata, Errno.EBADF, tag, 0, 0))
                    continue
                if not entry.rights & R.POLL_FD_READWRITE:
                    ready.append((userdata, Errno.ENOTCAPABLE, tag, 0, 0))
                    continue
                ready.append((userdata, 0, tag, self._available(entry, tag), 0))
            else:
                return Errno.EINVAL
        # fd subscriptions are always ready, so only a poll of clocks alone sleeps.
        if not ready and timers:
            first = min(w for w, _ in timers)
            if first > 0:
                time.sleep(first / 1e9)
            limit = max(first, 0)
        else:
            limit = 0
        ready += [(u, 0, EVENTTYPE_CLOCK, 0, 0) for w, u in timers if w <= limit]
        for i, ev in enumerate(ready):
            mem.pack(EVENT, out + EVENT.size * i, *ev)
        mem.set_u32(nevents, len(ready))
        return 0

    @staticmethod
    def _available(entry: _Fd, tag: int) -> int:
        """Bytes a read could return at once (for a regular file: up to its end)."""
        if tag == EVENTTYPE_FD_READ and entry.host is not None and \
                entry.filetype == Filetype.REGULAR_FILE:
            try:
                return max(0, os.fstat(entry.host).st_size - os.lseek(entry.host, 0, os.SEEK_CUR))
            except OSError:
                return 0
        return 0


# -- the import table ----------------------------------------------------------------------

# Every preview-1 function: its parameters (i = i32, I = i64) and results ("" for
# proc_exit, else the errno). Functions WasiCtx has no method for return ENOSYS.
SIGNATURES: dict[str, tuple[str, str]] = {
    name: (params, "" if name == "proc_exit" else "i")
    for name, params in (
        ("args_get", "ii"), ("args_sizes_get", "ii"), ("environ_get", "ii"),
        ("environ_sizes_get", "ii"), ("clock_res_get", "ii"), ("clock_time_get", "iIi"),
        ("fd_advise", "iIIi"), ("fd_allocate", "iII"), ("fd_close", "i"), ("fd_datasync", "i"),
        ("fd_fdstat_get", "ii"), ("fd_fdstat_set_flags", "ii"), ("fd_fdstat_set_rights", "iII"),
        ("fd_filestat_get", "ii"), ("fd_filestat_set_size", "iI"),
        ("fd_filestat_set_times", "iIIi"), ("fd_pread", "iiiIi"), ("fd_prestat_get", "ii"),
        ("fd_prestat_dir_name", "iii"), ("fd_pwrite", "iiiIi"), ("fd_read", "iiii"),
        ("fd_readdir", "iiiIi"), ("fd_renumber", "ii"), ("fd_seek", "iIii"), ("fd_sync", "i"),
        ("fd_tell", "ii"), ("fd_write", "iiii"), ("path_create_directory", "iii"),
        ("path_filestat_get", "iiiii"), ("path_filestat_set_times", "iiiiIIi"),
        ("path_link", "iiiiiii"), ("path_open", "iiiiiIIii"), ("path_readlink", "iiiiii"),
        ("path_remove_directory", "iii"), ("path_rename", "iiiiii"), ("path_symlink", "iiiii"),
        ("path_unlink_file", "iii"), ("poll_oneoff", "iiii"), ("proc_exit", "i"),
        ("proc_raise", "i"), ("sched_yield", ""), ("random_get", "ii"),
        ("sock_accept", "iii"), ("sock_recv", "iiiiii"), ("sock_send", "iiiii"),
        ("sock_shutdown", "ii"),
    )
}

_VT = {"i": ValType.I32, "I": ValType.I64}


def func_type(name: str) -> FuncType:
    params, results = SIGNATURES[name]
    return FuncType(tuple(_VT[c] for c in params), tuple(_VT[c] for c in results))


def implemented() -> list[str]:
    """The preview-1 functions with a real implementation (the rest return ENOSYS)."""
    return [n for n in SIGNATURES if callable(getattr(WasiCtx, n, None))]


def call(ctx: WasiCtx, name: str, mem: Any, *args: int) -> int | None:
    """Run preview-1 function `name` on `ctx` with raw arguments, `mem` being a
    `GuestMemory` (or any object with a `data` bytearray). Returns the errno (None for
    proc_exit, which raises ExitTrap)."""
    method = getattr(ctx, name, None)
    if not callable(method) or name not in SIGNATURES:
        return int(Errno.ENOSYS)
    if not isinstance(mem, GuestMemory):
        mem = GuestMemory(mem)
    try:
        return int(method(mem, *args) or 0) if name != "proc_exit" else method(mem, *args)
    except _Err as e:
        return e.code
    except OSError as e:
        return host_errno(e)
    except (OverflowError, ValueError):  # offsets or sizes the host cannot represent
        return int(Errno.EINVAL)


# Store -> its WasiCtx (weak: the context goes away with the store).
_CONTEXTS: "weakref.WeakKeyDictionary[_rt.Store, WasiCtx]" = weakref.WeakKeyDictionary()


def attach(store: _rt.Store, config: WasiConfig | None) -> WasiCtx | None:
    """Give runtime store `store` a fresh WASI context built from `config` (None
    removes it); the previous context's descriptors are closed."""
    old = _CONTEXTS.pop(store, None)
    if old is not None:
        old.close()
    if config is None:
        return None
    ctx = WasiCtx(config)
    _CONTEXTS[store] = ctx
    return ctx


def context(store: _rt.Store) -> WasiCtx | None:
    return _CONTEXTS.get(store)


def _make_host(name: str) -> _rt.HostFunction:
    def host(store: _rt.Store, args: list) -> list:
        ctx = _CONTEXTS.get(store)
        if ctx is None:
            raise Trap(f"WASI function `{name}` called but the store has no WASI "
                       "configuration (Store.set_wasi)")
        result = call(ctx, name, _CallerMemory(store), *args)
        return [] if result is None else [result]

    return _rt.HostFunction(func_type(name), host, name=name)


_HOSTS: dict[str, _rt.HostFunction] = {}


def host_functions() -> dict[str, _rt.HostFunction]:
    """Every preview-1 import by name, as runtime host functions (shared: they find the
    WASI context of the store they are called in)."""
    if not _HOSTS:
        _HOSTS.update((name, _make_host(name)) for name in SIGNATURES)
    return dict(_HOSTS)


# -- running commands --------------------------------------------------------------------------


def run_command(engine: Any, module: Any, config: WasiConfig, *, fuel: int | None = None,
                extra: Iterable[tuple[str, str, Any, Callable]] = ()) -> int:
    """Instantiate WASI command `module` (a `deadeye.Module`) in a new store of `engine`
    with `config`, run its `_start`, and return the exit status: the `proc_exit` code,
    or 0 when `_start` returns. `fuel` sets the store's fuel (the engine must consume
    fuel). `extra` are more host functions as (module, name, FuncType, callable) for
    `Linker.define_func`. Imports `bench.start`/`bench.end` (Sightglass' markers) are
    defined as no-ops unless given. Traps propagate."""
    from deadeye import api

    store = api.Store(engine)
    if fuel is not None:
        store.set_fuel(fuel)
    linker = api.Linker(engine)
    for mod, name, ty, fn in extra:
        linker.define_func(mod, name, ty, fn)
    given = {(m, n) for m, n, _, _ in extra}
    for imp in module._module.imports:
        key = (imp.module, imp.name)
        if imp.module == "bench" and imp.kind == "func" and key not in given:
            ty = module._module.types[imp.desc]
            if not ty.params and not ty.results:
                linker.define_func("bench", imp.name, ty, lambda: None)
                given.add(key)
    linker.define_wasi()
    store.set_wasi(config)
    try:
        instance = linker.instantiate(store, module)
        start = instance.exports(store).get("_start")
        if not isinstance(start, api.Func):
            raise WasmError("the module exports no `_start` function (not a WASI command)")
        try:
            start(store)
        except ExitTrap as e:
            return e.code
        return 0
    finally:
        store.set_wasi(None)  # close the guest's descriptors


def parse_dir(spec: str) -> tuple[str, str]:
    """`HOST[::GUEST]` (the command line's --dir) as (host, guest); the guest name
    defaults to the host path, as in wasmtime."""
    host, sep, guest = spec.partition("::")
    if not host or (sep and not guest):
        raise WasmError(f"invalid --dir {spec!r}: expected HOST or HOST::GUEST")
    return host, guest if sep else host


def parse_env(spec: str) -> tuple[str, str]:
    """`K=V` (the command line's --env); a bare `K` takes the host's value."""
    key, sep, value = spec.partition("=")
    if not key:
        raise WasmError(f"invalid --env {spec!r}: expected NAME=VALUE")
    if not sep:
        if key not in os.environ:
            raise WasmError(f"--env {key}: not set in this environment")
        value = os.environ[key]
    return key, value


def run_cli(args: Any, engine: Any, module: Any) -> int:
    """`deadeye run` for a WASI command: argv = [FILE's basename, ARGS...], `--env`
    variables, `--dir` preopens, the process's stdio; returns the guest's exit status."""
    guest = list(args.args)
    if guest and guest[0] == "--":
        guest = guest[1:]
    config = WasiConfig()
    config.argv = [os.path.basename(args.file)] + guest
    config.env = [parse_env(e) for e in (getattr(args, "env", None) or ())]
    for spec in getattr(args, "dir", None) or ():
        config.preopen_dir(*parse_dir(spec))
    config.inherit_stdin()
    config.inherit_stdout()
    config.inherit_stderr()
    sys.stdout.flush()
    sys.stderr.flush()
    return run_command(engine, module, config, fuel=getattr(args, "fuel", None))
