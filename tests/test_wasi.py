"""WASI preview 1 (deadeye/wasi.py): the WAT programs of tests/wasi/ run under deadeye and
under wasmtime (same argv, environment, stdin and preopened directory: same output, exit
status and resulting files), plus direct calls of each function on a fake guest memory for
layouts, rights, errno values and the sandbox."""

from __future__ import annotations

import os
import struct
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

import deadeye
from deadeye import wasi
from deadeye.ir.errors import ExitTrap, Trap, WasmError
from deadeye.wasi import Errno, R

import wasi_progs as progs

E = Errno

# -- programs, differential against wasmtime ------------------------------------------------


def _both(name: str, tmp_path: Path, setup_dir=None, argv=("prog", "x y", "é"),
          env=(("A", "1"), ("EMPTY", "")), stdin: bytes | None = None):
    """Run program `name` under wasmtime and deadeye, each in its own fresh directory
    tree (built by `setup_dir(root)`); returns {who: (exit, stdout, tree, base)}."""
    wasm = progs.assemble(name)
    out = {}
    for who, run in (("wasmtime", progs.run_wasmtime), ("deadeye", progs.run_deadeye)):
        base = tmp_path / who
        root = base / "root"
        root.mkdir(parents=True)
        if setup_dir is not None:
            setup_dir(base, root)
        stdin_path = None
        if stdin is not None:
            stdin_path = str(base / "stdin")
            Path(stdin_path).write_bytes(stdin)
        setup = progs.Setup(list(argv), list(env), str(root), stdin_path)
        code = run(wasm, setup, str(base / "stdout"))
        out[who] = (code, (base / "stdout").read_bytes(), progs.tree(str(root), str(base)), base)
    return out


def _same(res):
    a, b = res["wasmtime"], res["deadeye"]
    assert b[1].decode() == a[1].decode()
    assert b[0] == a[0]
    assert b[2] == a[2]
    return b


def test_args_env_prestat(tmp_path):
    argv = ["prog", "two words", "é", ""]
    env = [("A", "1"), ("EMPTY", ""), ("PATHLIKE", "a=b=c")]
    code, out, _, _ = _same(_both("args_env", tmp_path, argv=argv, env=env))
    assert code == 0
    lines = out.decode().split("\n")
    for a in argv[1:]:
        assert a in lines
    for k, v in env:
        assert f"{k}={v}" in lines


def test_files(tmp_path):
    code, out, files, _ = _same(_both("files", tmp_path))
    assert code == 7
    assert files == {"kept.txt": b"kept\n"}
    assert b"HEL++" in out  # truncated to 3 bytes, then appended


def test_stdin(tmp_path):
    data = b"line one\nsecond line\n" * 3
    code, out, _, _ = _same(_both("stdin", tmp_path, stdin=data))
    assert f"total: {len(data)}".encode() in out


@pytest.mark.parametrize("argv", [["prog"], ["prog", "a", "b"]])
def test_exit_status(tmp_path, argv):
    code, out, _, _ = _same(_both("exit", tmp_path, argv=argv))
    assert code == (0 if len(argv) == 1 else 10 + len(argv))
    assert out.startswith(b"before exit\n")


def _escape_tree(base: Path, root: Path) -> None:
    outside = base / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_bytes(b"secret")
    (root / "a").mkdir()
    os.symlink(str(outside), root / "out")
    os.symlink("../outside", root / "up")
    os.symlink("loop", root / "loop")
    os.symlink("l2", root / "l1")
    os.symlink("l1", root / "l2")
    os.symlink("a", root / "inside")


def test_sandbox_escapes(tmp_path):
    res = _both("escapes", tmp_path, setup_dir=_escape_tree)
    code, out, files, base = _same(res)
    lines = out.decode().splitlines()
    attempts = [ln for ln in lines if ln.split(":")[0].split()[0] in
                ("create", "read", "open", "stat", "mkdir", "unlink", "rename", "rmdir")]
    # every attempt naming something outside, or a loop, is refused; the rest work
    allowed = {"stat out (nofollow)", "create inside/f.txt", "stat inside/../a/f.txt",
               "open a/..", "open .", "stat ./a/./"}
    assert len(attempts) == 28
    for ln in attempts:
        assert ln.endswith(": refused") != (ln in allowed), ln
    assert sorted(p.name for p in (base / "outside").iterdir()) == ["victim.txt"]
    assert (base / "outside" / "victim.txt").read_bytes() == b"secret"
    assert not any("escape" in p.name or "moved" in p.name or "newdir" in p.name
                   for p in base.rglob("*"))
    assert files["a/f.txt"] == b""


# -- programs checked against the errno table (wasmtime traps or lacks the feature) -------


def _run_alone(name: str, tmp_path: Path) -> tuple[int, list[str], Path]:
    root = tmp_path / "root"
    root.mkdir()
    setup = progs.Setup(["prog"], [("K", "V")], str(root))
    code = progs.run_deadeye(progs.assemble(name), setup, str(tmp_path / "stdout"))
    return code, (tmp_path / "stdout").read_text().splitlines(), root


def test_bad_pointers_give_efault(tmp_path):
    code, lines, root = _run_alone("faults", tmp_path)
    assert code == 0 and lines[-1] == "done"
    results = [ln.rsplit(": ", 1) for ln in lines[:-1]]
    assert len(results) == 18
    for label, value in results:
        assert int(value) == E.EFAULT, label
    assert not (root / "created").exists()  # the result pointer is checked before opening


def test_clocks_poll_random(tmp_path):
    t0 = time.monotonic()
    code, lines, _ = _run_alone("clock_poll", tmp_path)
    assert time.monotonic() - t0 >= 0.03
    got = dict(ln.rsplit(": ", 1) for ln in lines)
    ok = {"clock monotonic", "clock realtime", "clock process", "clock thread", "res realtime",
          "res monotonic", "poll sleep", "poll fd", "random", "sched_yield"}
    for k in ok:
        assert got[k] == "0", k
    for k in ("realtime plausible", "res positive", "slept 30ms", "random nonzero"):
        assert got[k] == "1", k
    assert got["clock bad"] == got["res bad"] == got["poll none"] == str(int(E.EINVAL))
    assert got["fdstat bad fd"] == str(int(E.EBADF))
    # the last poll: only the fd_write event (type 2, userdata 77) of stdout
    i = lines.index("poll fd: 0")
    assert lines[i + 1 : i + 5] == ["nevents: 1", "userdata: 77", "error: 0", "type: 2"]
    assert code == 0


# -- the import table ---------------------------------------------------------------------


def test_signatures_match_wasmtime():
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    conv = {"i32": "i", "i64": "I"}
    for name, (params, results) in wasi.SIGNATURES.items():
        ty = linker.get(store, wasi.MODULE, name).type(store)
        assert "".join(conv[str(t)] for t in ty.params) == params, name
        assert "".join(conv[str(t)] for t in ty.results) == results, name
    assert len(wasi.SIGNATURES) == 46


def test_unimplemented_return_enosys():
    ctx = wasi.WasiCtx(wasi.WasiConfig())
    missing = set(wasi.SIGNATURES) - set(wasi.implemented())
    assert "sock_accept" in missing and "fd_write" not in missing
    for name in missing:
        nargs = len(wasi.SIGNATURES[name][0])
        assert wasi.call(ctx, name, _mem(), *([0] * nargs)) == E.ENOSYS
    required = ("args_get args_sizes_get environ_get environ_sizes_get clock_time_get "
                "clock_res_get random_get fd_write fd_read fd_pread fd_pwrite fd_seek fd_tell "
                "fd_close fd_fdstat_get fd_fdstat_set_flags fd_filestat_get fd_prestat_get "
                "fd_prestat_dir_name fd_readdir path_open path_filestat_get "
                "path_create_directory path_unlink_file path_remove_directory path_rename "
                "proc_exit sched_yield poll_oneoff").split()
    assert set(required) <= set(wasi.implemented())


def test_errno_values_follow_preview1():
    assert (E.ESUCCESS, E.E2BIG, E.EBADF, E.EFAULT, E.EINVAL, E.ENOENT, E.ENOSYS,
            E.ENOTCAPABLE, E.EXDEV) == (0, 1, 8, 21, 28, 44, 52, 76, 75)
    import errno as host

    assert wasi.host_errno(OSError(host.ENOENT, "x")) == E.ENOENT
    assert wasi.host_errno(OSError(host.ENOTEMPTY, "x")) == E.ENOTEMPTY
    assert wasi.host_errno(OSError(0, "x")) == E.EIO


# -- direct calls on a fake memory ----------------------------------------------------------


def _mem(pages: int = 1) -> wasi.GuestMemory:
    return wasi.GuestMemory(SimpleNamespace(data=bytearray(pages * 65536)))


def _ctx(tmp_path: Path | None = None, mutable: bool = True, **kw) -> wasi.WasiCtx:
    cfg = wasi.WasiConfig(**kw)
    if tmp_path is not None:
        cfg.preopen_dir(str(tmp_path), "/sandbox", fs_mutable=mutable)
    return wasi.WasiCtx(cfg)


def _put(mem: wasi.GuestMemory, addr: int, text: bytes) -> tuple[int, int]:
    mem.write(addr, text)
    return addr, len(text)


def _open(ctx, mem, path: bytes, oflags=0, rights=0x60006E, fdflags=0, follow=1, dirfd=3):
    p, n = _put(mem, 40000, path)
    e = wasi.call(ctx, "path_open", mem, dirfd, follow, p, n, oflags, rights, 0, fdflags, 64)
    return e, mem.u32(64)


def test_multi_iovec_write_and_read(tmp_path):
    ctx, mem = _ctx(tmp_path), _mem()
    e, fd = _open(ctx, mem, b"f", oflags=wasi.O_CREAT)
    assert e == 0
    mem.write(1000, b"abc")
    mem.write(2000, b"defgh")
    mem.pack(wasi.IOVEC, 100, 1000, 3)
    mem.pack(wasi.IOVEC, 108, 2000, 0)
    mem.pack(wasi.IOVEC, 116, 2000, 5)
    assert wasi.call(ctx, "fd_write", mem, fd, 100, 3, 200) == 0
    assert mem.u32(200) == 8
    assert (tmp_path / "f").read_bytes() == b"abcdefgh"
    mem.pack(wasi.IOVEC, 100, 3000, 2)
    mem.pack(wasi.IOVEC, 108, 4000, 10)
    assert wasi.call(ctx, "fd_pread", mem, fd, 100, 2, 1, 200) == 0
    assert mem.u32(200) == 7
    assert mem.read(3000, 2) == b"bc" and mem.read(4000, 5) == b"defgh"
    # iovec count pointing past memory: EFAULT, nothing written
    assert wasi.call(ctx, "fd_write", mem, fd, 65530, 2, 200) == E.EFAULT
    ctx.close()


def test_struct_layouts(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"x" * 1234)
    ctx, mem = _ctx(tmp_path), _mem()
    e, fd = _open(ctx, mem, b"data.bin", rights=R.FD_READ | R.FD_FILESTAT_GET | R.FD_SEEK)
    assert e == 0
    st = os.stat(tmp_path / "data.bin")
    assert wasi.call(ctx, "fd_filestat_get", mem, fd, 512) == 0
    raw = mem.read(512, 64)
    dev, ino, ft = struct.unpack_from("<QQB", raw, 0)
    nlink, size, atim, mtim, ctim = struct.unpack_from("<QQQQQ", raw, 24)
    assert (dev, ino, ft, nlink, size) == (st.st_dev, st.st_ino, 4, st.st_nlink, 1234)
    assert (atim, mtim, ctim) == (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
    assert wasi.call(ctx, "fd_fdstat_get", mem, fd, 600) == 0
    ftype, flags, base, inh = struct.unpack_from("<BxHxxxxQQ", mem.read(600, 24))
    assert (ftype, flags, base, inh) == (4, 0, R.FD_READ | R.FD_FILESTAT_GET | R.FD_SEEK, 0)
    # prestat: tag u8 at 0 (padding zeroed), name length u32 at 4; the name without a NUL
    mem.write(700, b"\xff" * 8)
    assert wasi.call(ctx, "fd_prestat_get", mem, 3, 700) == 0
    assert mem.read(700, 8) == bytes(4) + struct.pack("<I", 8)
    assert wasi.call(ctx, "fd_prestat_dir_name", mem, 3, 800, 7) == E.ENAMETOOLONG
    assert wasi.call(ctx, "fd_prestat_dir_name", mem, 3, 800, 20) == 0
    assert mem.read(800, 9) == b"/sandbox\0"
    assert wasi.call(ctx, "fd_prestat_get", mem, fd, 700) == E.EBADF
    # dirent: d_next u64, d_ino u64, d_namlen u32, d_type u8, then the name
    assert wasi.call(ctx, "fd_readdir", mem, 3, 1000, 4096, 2, 900) == 0
    used = mem.u32(900)
    d_next, d_ino, namlen, dtype = struct.unpack_from("<QQIB", mem.read(1000, 21))
    assert (d_next, d_ino, namlen, dtype) == (3, st.st_ino, 8, 4)
    assert mem.read(1024, 8) == b"data.bin" and used == 32
    # stdio: character devices (null streams here), no seeking
    assert wasi.call(ctx, "fd_fdstat_get", mem, 1, 600) == 0
    ftype, _, base, _ = struct.unpack_from("<BxHxxxxQQ", mem.read(600, 24))
    assert ftype == 2 and base & R.FD_WRITE and not base & (R.FD_SEEK | R.FD_TELL)
    ctx.close()


def test_rights_and_read_only_preopen(tmp_path):
    (tmp_path / "ro.txt").write_bytes(b"data")
    ctx, mem = _ctx(tmp_path, mutable=False), _mem()
    assert _open(ctx, mem, b"new", oflags=wasi.O_CREAT)[0] == E.ENOTCAPABLE
    assert _open(ctx, mem, b"ro.txt", rights=R.FD_WRITE)[0] == E.ENOTCAPABLE
    assert _open(ctx, mem, b"ro.txt", rights=R.FD_READ, fdflags=wasi.FDFLAG_APPEND)[0] == E.ENOTCAPABLE
    e, fd = _open(ctx, mem, b"ro.txt", rights=R.FD_READ)
    assert e == 0
    mem.pack(wasi.IOVEC, 100, 1000, 4)
    assert wasi.call(ctx, "fd_write", mem, fd, 100, 1, 200) == E.ENOTCAPABLE
    assert wasi.call(ctx, "fd_read", mem, fd, 100, 1, 200) == 0 and mem.read(1000, 4) == b"data"
    assert wasi.call(ctx, "fd_seek", mem, fd, 0, 0, 200) == E.ENOTCAPABLE  # not asked for
    p, n = _put(mem, 5000, b"ro.txt")
    assert wasi.call(ctx, "path_unlink_file", mem, 3, p, n) == E.ENOTCAPABLE
    assert wasi.call(ctx, "path_create_directory", mem, 3, p, n) == E.ENOTCAPABLE
    assert wasi.call(ctx, "path_rename", mem, 3, p, n, 3, p, n) == E.ENOTCAPABLE
    assert (tmp_path / "ro.txt").read_bytes() == b"data"
    assert sorted(os.listdir(tmp_path)) == ["ro.txt"]
    # a file fd is not a directory
    assert wasi.call(ctx, "path_create_directory", mem, fd, p, n) == E.ENOTDIR
    assert wasi.call(ctx, "fd_write", mem, 99, 100, 1, 200) == E.EBADF
    ctx.close()


def test_escape_errnos(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret").write_bytes(b"s")
    (root / "d").mkdir()
    os.symlink(str(tmp_path), root / "abs")
    os.symlink("../secret", root / "rel")
    os.symlink("d/../../secret", root / "deep")
    os.symlink("loop", root / "loop")
    os.symlink("d/..", root / "here")
    ctx, mem = _ctx(root), _mem()
    cases = {
        b"../secret": E.ENOTCAPABLE, b"d/../../secret": E.ENOTCAPABLE, b"/etc/passwd": E.ENOTCAPABLE,
        b"abs/secret": E.ENOTCAPABLE, b"rel": E.ENOTCAPABLE, b"deep": E.ENOTCAPABLE,
        b"loop": E.ELOOP, b"loop/x": E.ELOOP, b"d/\xff": E.EILSEQ, b"a\0b": E.EINVAL,
        b"": E.ENOENT, b"missing/x": E.ENOENT, b"here/here/here/d/../here/../..": E.ENOTCAPABLE,
    }
    for path, want in cases.items():
        assert _open(ctx, mem, path, rights=R.FD_READ)[0] == want, path
    # not following the final link: the link itself (O_NOFOLLOW refuses to open it)
    p, n = _put(mem, 5000, b"rel")
    assert wasi.call(ctx, "path_filestat_get", mem, 3, 0, p, n, 600) == 0
    assert mem.read(616, 1) == bytes([wasi.Filetype.SYMBOLIC_LINK])
    assert _open(ctx, mem, b"rel", rights=R.FD_READ, follow=0)[0] == E.ELOOP
    assert wasi.call(ctx, "path_readlink", mem, 3, p, n, 7000, 100, 200) == 0
    assert mem.read(7000, mem.u32(200)) == b"../secret"
    # links and ".." inside the sandbox resolve
    e, fd = _open(ctx, mem, b"here/here/d/../d", oflags=wasi.O_DIRECTORY, rights=0)
    assert e == 0 and wasi.call(ctx, "fd_fdstat_get", mem, fd, 600) == 0
    assert mem.read(600, 1) == bytes([wasi.Filetype.DIRECTORY])
    # ".." cannot leave a directory opened below the preopen either
    q, m = _put(mem, 5100, b"../d")
    assert wasi.call(ctx, "path_filestat_get", mem, fd, 0, q, m, 600) == E.ENOTCAPABLE
    ctx.close()


def test_seek_tell_whence(tmp_path):
    ctx, mem = _ctx(tmp_path), _mem()
    e, fd = _open(ctx, mem, b"f", oflags=wasi.O_CREAT)
    mem.pack(wasi.IOVEC, 100, 1000, 10)
    assert wasi.call(ctx, "fd_write", mem, fd, 100, 1, 200) == 0
    assert wasi.call(ctx, "fd_seek", mem, fd, 2**64 - 3, 2, 300) == 0  # -3 from the end
    assert struct.unpack("<Q", mem.read(300, 8))[0] == 7
    assert wasi.call(ctx, "fd_tell", mem, fd, 300) == 0
    assert struct.unpack("<Q", mem.read(300, 8))[0] == 7
    assert wasi.call(ctx, "fd_seek", mem, fd, 0, 3, 300) == E.EINVAL
    assert wasi.call(ctx, "fd_seek", mem, fd, 2**64 - 100, 0, 300) == E.EINVAL
    assert wasi.call(ctx, "fd_seek", mem, 1, 0, 0, 300) == E.ENOTCAPABLE  # stdout
    assert wasi.call(ctx, "fd_pwrite", mem, fd, 100, 1, 2**63, 200) == E.EINVAL
    ctx.close()


def test_fdflags_renumber_close(tmp_path):
    ctx, mem = _ctx(tmp_path), _mem()
    e, fd = _open(ctx, mem, b"f", oflags=wasi.O_CREAT)
    assert wasi.call(ctx, "fd_fdstat_set_flags", mem, fd, wasi.FDFLAG_APPEND) == 0
    assert wasi.call(ctx, "fd_fdstat_get", mem, fd, 600) == 0
    assert struct.unpack_from("<H", mem.read(602, 2))[0] == wasi.FDFLAG_APPEND
    assert wasi.call(ctx, "fd_fdstat_set_flags", mem, fd, wasi.FDFLAG_SYNC) == E.ENOTSUP
    host = ctx.fds[fd].host
    assert wasi.call(ctx, "fd_renumber", mem, fd, 0) == 0
    assert wasi.call(ctx, "fd_fdstat_get", mem, fd, 600) == E.EBADF
    assert ctx.fds[0].host == host
    assert wasi.call(ctx, "fd_close", mem, 0) == 0
    with pytest.raises(OSError):
        os.fstat(host)  # the host descriptor was closed with it
    assert wasi.call(ctx, "fd_renumber", mem, 0, 1) == E.EBADF
    ctx.close()


def test_poll_oneoff_details(tmp_path):
    ctx, mem = _ctx(tmp_path), _mem()
    # an absolute realtime deadline in the past fires at once; a bad fd reports EBADF;
    # a bad clock id reports EINVAL
    mem.pack(wasi.SUBSCRIPTION, 1000, 1, 0, wasi.SUB_CLOCK.pack(0, 1, 0, wasi.SUBCLOCK_ABSTIME).ljust(32, b"\0"))
    mem.pack(wasi.SUBSCRIPTION, 1048, 2, 1, wasi.SUB_FD.pack(42).ljust(32, b"\0"))
    mem.pack(wasi.SUBSCRIPTION, 1096, 3, 0, wasi.SUB_CLOCK.pack(77, 0, 0, 0).ljust(32, b"\0"))
    t0 = time.monotonic()
    assert wasi.call(ctx, "poll_oneoff", mem, 1000, 2000, 3, 100) == 0
    assert time.monotonic() - t0 < 1
    events = sorted(wasi.EVENT.unpack_from(mem.read(2000 + 32 * i, 32)) for i in range(mem.u32(100)))
    assert events == [(1, 0, 0, 0, 0), (2, E.EBADF, 1, 0, 0), (3, E.EINVAL, 0, 0, 0)]
    # fd_read readiness of a regular file reports the bytes left
    (tmp_path / "r").write_bytes(b"12345")
    e, fd = _open(ctx, mem, b"r", rights=R.FD_READ | R.POLL_FD_READWRITE)
    mem.pack(wasi.SUBSCRIPTION, 1000, 9, 1, wasi.SUB_FD.pack(fd).ljust(32, b"\0"))
    assert wasi.call(ctx, "poll_oneoff", mem, 1000, 2000, 1, 100) == 0
    assert wasi.EVENT.unpack_from(mem.read(2000, 32)) == (9, 0, 1, 5, 0)
    mem.write(1008, b"\x07")  # unknown tag
    assert wasi.call(ctx, "poll_oneoff", mem, 1000, 2000, 1, 100) == E.EINVAL
    ctx.close()


def test_proc_exit_and_args(tmp_path):
    ctx, mem = _ctx(argv=["a", "bc"], env=[("K", "v")]), _mem()
    with pytest.raises(ExitTrap) as ei:
        wasi.call(ctx, "proc_exit", mem, 3)
    assert ei.value.code == 3
    assert wasi.call(ctx, "args_sizes_get", mem, 0, 4) == 0
    assert (mem.u32(0), mem.u32(4)) == (2, 5)
    assert wasi.call(ctx, "args_get", mem, 100, 200) == 0
    assert (mem.u32(100), mem.u32(104)) == (200, 202) and mem.read(200, 5) == b"a\0bc\0"
    assert wasi.call(ctx, "environ_get", mem, 100, 200) == 0 and mem.read(200, 4) == b"K=v\0"
    assert wasi.call(ctx, "args_get", mem, 100, 65535) == E.EFAULT


def test_config(tmp_path):
    cfg = wasi.WasiConfig()
    cfg.inherit_argv()
    cfg.inherit_env()
    ctx = wasi.WasiCtx(cfg)
    assert ctx.args == [os.fsencode(a) for a in sys.argv]
    assert len(ctx.env) == len(os.environ)
    with pytest.raises(WasmError):
        cfg.stdin_file = str(tmp_path / "missing")
    with pytest.raises(WasmError):
        cfg.preopen_dir(str(tmp_path / "missing"), ".")
    with pytest.raises(WasmError):
        cfg.env = [("A=B", "c")]
    with pytest.raises(WasmError):
        cfg.argv = ["a\0b"]
    with pytest.raises(TypeError):
        cfg.argv = "abc"
    cfg.argv = ["x"]
    cfg.env = [("K", "V")]
    assert cfg.argv == ["x"] and cfg.env == [("K", "V")]
    # custom output and a stdout file
    got = []
    cfg.stdout_custom = got.append
    cfg.stderr_file = str(tmp_path / "err")
    ctx = wasi.WasiCtx(cfg)
    mem = _mem()
    mem.write(1000, b"hi")
    mem.pack(wasi.IOVEC, 100, 1000, 2)
    assert wasi.call(ctx, "fd_write", mem, 1, 100, 1, 200) == 0
    assert wasi.call(ctx, "fd_write", mem, 2, 100, 1, 200) == 0
    ctx.close()
    assert got == [b"hi"] and (tmp_path / "err").read_bytes() == b"hi"


def test_store_without_wasi_traps_and_set_wasi_closes(tmp_path):
    engine = deadeye.Engine(deadeye.Config(engine="ir"))
    wasm = progs.assemble("exit")
    store = deadeye.Store(engine)
    linker = deadeye.Linker(engine)
    linker.define_wasi()
    inst = linker.instantiate(store, deadeye.Module(engine, wasm))
    with pytest.raises(Trap, match="WASI"):
        inst.exports(store)["_start"](store)
    cfg = deadeye.WasiConfig()
    cfg.preopen_dir(str(tmp_path), ".")
    store.set_wasi(cfg)
    host = wasi.context(store._rt).fds[3].host
    os.fstat(host)
    store.set_wasi(None)
    with pytest.raises(OSError):
        os.fstat(host)
    assert wasi.context(store._rt) is None


def test_create_exclusive_does_not_follow_links(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink("target", root / "link")
    ctx, mem = _ctx(root), _mem()
    excl = wasi.O_CREAT | wasi.O_EXCL
    assert _open(ctx, mem, b"link", oflags=excl)[0] == E.EEXIST
    assert not (root / "target").exists()
    # without O_EXCL a dangling link is followed and its target created inside
    assert _open(ctx, mem, b"link", oflags=wasi.O_CREAT)[0] == 0
    assert (root / "target").is_file()
    ctx.close()


# -- `deadeye run` ------------------------------------------------------------------------


def _cli(*args: str, stdin: bytes = b"", cwd: str | None = None):
    import subprocess

    # the IR evaluator: the engine these tests pin everywhere (others may be in progress)
    return subprocess.run([sys.executable, "-m", "deadeye", "run", "--engine", "ir", *args],
                          input=stdin,
                          capture_output=True, timeout=120, cwd=cwd)


def _wasm_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(progs.assemble(name))
    return path


def test_cli_hello():
    examples = Path(__file__).parent.parent / "examples"
    r = _cli(str(examples / "hello.wasm"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Hello from deadeye!\n"


def test_cli_args_env_dir_matches_wasmtime(tmp_path):
    wasm = _wasm_file(tmp_path, "args_env")
    (tmp_path / "d").mkdir()
    r = _cli("--dir", f"{tmp_path / 'd'}::/guest", "--env", "A=1", "--env", "B=x=y",
             str(wasm), "--", "-5", "two words")
    assert r.returncode == 0, r.stderr
    setup = progs.Setup(["args_env.wasm", "-5", "two words"], [("A", "1"), ("B", "x=y")])
    cfg = wasmtime.WasiConfig()
    cfg.argv, cfg.env = setup.argv, setup.env
    cfg.preopen_dir(str(tmp_path / "d"), "/guest")
    cfg.stdout_file = str(tmp_path / "expected")
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_wasi(cfg)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    linker.instantiate(store, wasmtime.Module(engine, wasm.read_bytes())).exports(store)["_start"](store)
    assert r.stdout.decode() == (tmp_path / "expected").read_text()
    assert "/guest" in r.stdout.decode()


def test_cli_exit_status_files_and_stdin(tmp_path):
    r = _cli(str(_wasm_file(tmp_path, "exit")), "a", "b", "c")
    assert r.returncode == 14 and r.stdout == b"before exit\n"
    r = _cli(str(_wasm_file(tmp_path, "exit")))
    assert r.returncode == 0 and r.stdout == b"before exit\nreturned\n"
    (tmp_path / "d").mkdir()
    r = _cli("--dir", str(tmp_path / "d") + "::.", str(_wasm_file(tmp_path, "files")))
    assert r.returncode == 7, r.stderr
    assert sorted(os.listdir(tmp_path / "d")) == ["kept.txt"]
    data = b"from the pipe\n"
    r = _cli(str(_wasm_file(tmp_path, "stdin")), stdin=data)
    assert r.returncode == 0 and f"total: {len(data)}".encode() in r.stdout


def test_cli_errors_without_traceback(tmp_path):
    wasm = str(_wasm_file(tmp_path, "exit"))
    for args in (["--dir", str(tmp_path / "missing"), wasm], ["--dir", "::x", wasm],
                 ["--env", "=v", wasm]):
        r = _cli(*args)
        assert r.returncode == 1
        assert b"Traceback" not in r.stderr and r.stderr.startswith(b"error:"), r.stderr


def test_links_times_allocate_rights(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_bytes(b"abc")
    ctx, mem = _ctx(root), _mem()
    t, tn = _put(mem, 5000, b"f")
    ln, lnn = _put(mem, 5100, b"lnk")
    assert wasi.call(ctx, "path_symlink", mem, t, tn, 3, ln, lnn) == 0
    assert os.readlink(root / "lnk") == "f"
    a, an = _put(mem, 5200, b"/etc")
    assert wasi.call(ctx, "path_symlink", mem, a, an, 3, ln, lnn) == E.ENOTCAPABLE
    h, hn = _put(mem, 5300, b"hard")
    assert wasi.call(ctx, "path_link", mem, 3, 1, ln, lnn, 3, h, hn) == 0  # follows lnk -> f
    assert os.stat(root / "hard").st_ino == os.stat(root / "f").st_ino
    # times: set mtime exactly, leave atime
    before = os.stat(root / "f")
    assert wasi.call(ctx, "path_filestat_set_times", mem, 3, 0, t, tn, 0, 10**18, wasi.FST_MTIM) == 0
    after = os.stat(root / "f")
    assert after.st_mtime_ns == 10**18 and after.st_atime_ns == before.st_atime_ns
    assert wasi.call(ctx, "path_filestat_set_times", mem, 3, 0, t, tn, 0, 0,
                     wasi.FST_MTIM | wasi.FST_MTIM_NOW) == E.EINVAL
    e, fd = _open(ctx, mem, b"f", rights=0x60006E | R.FD_FILESTAT_SET_TIMES | R.FD_ALLOCATE)
    assert e == 0
    assert wasi.call(ctx, "fd_filestat_set_times", mem, fd, 5 * 10**17, 0, wasi.FST_ATIM) == 0
    assert os.stat(root / "f").st_atime_ns == 5 * 10**17
    assert wasi.call(ctx, "fd_allocate", mem, fd, 0, 100) == 0
    assert os.stat(root / "f").st_size == 100
    # rights only shrink
    assert wasi.call(ctx, "fd_fdstat_set_rights", mem, fd, R.FD_READ, 0) == 0
    assert wasi.call(ctx, "fd_fdstat_set_rights", mem, fd, R.FD_READ | R.FD_WRITE, 0) == E.ENOTCAPABLE
    mem.pack(wasi.IOVEC, 100, 1000, 1)
    assert wasi.call(ctx, "fd_write", mem, fd, 100, 1, 200) == E.ENOTCAPABLE
    ctx.close()


# -- the resolver never leaves the sandbox (property) ------------------------------------

_COMPONENTS = ["a", "b", "..", ".", "", "up", "abs", "self", "down", "f", "missing"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    base = tmp_path_factory.mktemp("resolver")
    root = base / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f").write_bytes(b"")
    (base / "outside").mkdir()
    for where in (root, root / "a", root / "a" / "b"):
        os.symlink("..", where / "up")
        os.symlink(str(base / "outside"), where / "abs")
        os.symlink(".", where / "self")
        os.symlink("a/b", where / "down")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    yield fd, os.path.realpath(root)
    os.close(fd)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from(_COMPONENTS), min_size=1, max_size=8),
       follow=st.booleans())
def test_resolve_stays_inside(sandbox, parts, follow):
    fd, root = sandbox
    path = "/".join(parts).encode()
    open_fds = len(os.listdir("/proc/self/fd"))
    try:
        r = wasi.resolve(fd, path, follow)
    except wasi._Err as e:
        assert e.code in (E.ENOTCAPABLE, E.ENOENT, E.ENOTDIR, E.ELOOP), (path, e.code)
        assert len(os.listdir("/proc/self/fd")) == open_fds  # nothing leaked
        return
    with r:
        where = os.readlink(f"/proc/self/fd/{r.dirfd}")
        assert where == root or where.startswith(root + "/"), (path, where)
        assert b"/" not in r.name and r.name != b".."
        if follow:
            try:
                mode = os.stat(r.name, dir_fd=r.dirfd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                return
            assert not (mode & 0o170000 == 0o120000), path  # a final link was expanded
    assert len(os.listdir("/proc/self/fd")) == open_fds
