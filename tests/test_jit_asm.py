"""The handlers' machine code on x86-64 and AArch64 (llvmlite's emit_assembly): every
handler dispatches with a tail branch (`jmp *reg` / `br xN`), calls nothing (but libc's
memmove/memset in memory.copy/memory.fill, whose byte loops they are), and has
released any stack it used (callee-saved spills) at every tail branch and return; and the
object cache (cold compile, warm load, key)."""

import re

import pytest

from deadeye.interp.isa.table import OP_LIST
from deadeye.jit import compiler, llvmgen

TARGETS = {
    # x86-64-v2 has SSE4.1 (roundss/roundsd): without it ceil/floor/trunc/nearest become
    # calls to libm, the one out-of-line slow path a baseline x86-64 build would have.
    "x86_64-unknown-linux-gnu": ("x86-64-v2", r"jmpq?\s+\*", r"^(call|callq)\b"),
    "aarch64-unknown-linux-gnu": ("generic", r"^br\s+x\d+", r"^(bl|blr)\b"),
}


def _functions(asm: str) -> dict[str, list[str]]:
    funcs, cur = {}, None
    for line in asm.splitlines():
        m = re.match(r"^([A-Za-z_][\w.]*):", line)
        if m and not m.group(1).startswith(".L"):
            cur = funcs.setdefault(m.group(1), [])
            continue
        if cur is not None:
            s = line.strip()
            if re.match(r"^\.L\w+:", s):
                cur.append(s)
            elif s and not s.startswith((".", "#", "//", ";")):
                cur.append(s)
    return funcs


def _sp_delta(ins: str, arch: str) -> int | None:
    """Bytes this instruction pushes (positive) or pops; None when it does not touch sp."""
    if arch == "x86_64":
        if re.match(r"^pushq?\b", ins):
            return 8
        if re.match(r"^popq?\b", ins):
            return -8
        m = re.match(r"^(sub|add)q?\s+\$(-?\d+),\s*%rsp", ins)
        if m:
            return int(m.group(2)) * (1 if m.group(1) == "sub" else -1)
        if "%rsp" in ins and not re.search(r"\(%rsp\)", ins):
            raise AssertionError(f"unexpected rsp update: {ins}")
        return None
    m = re.match(r"^(sub|add)\s+sp,\s*sp,\s*#(\d+)", ins)
    if m:
        return int(m.group(2)) * (1 if m.group(1) == "sub" else -1)
    m = re.search(r"\[sp,\s*#-(\d+)\]!", ins)
    if m:
        return int(m.group(1))
    m = re.search(r"\[sp\],\s*#(\d+)", ins)
    if m:
        return -int(m.group(1))
    if re.match(r"^(mov|add|sub)\s+sp\b", ins):
        raise AssertionError(f"unexpected sp update: {ins}")
    return None


# Handlers allowed to call out, and what they may call.
LIBC_CALLS = {"memory.copy": "memmove", "memory.fill": "memset"}


def _check_function(name, body, arch, tail_re, call_re, libc=None):
    """Dataflow over the function's blocks: the sp offset must agree on every path into a
    label and be 0 at every tail branch and return. Returns the number of tail branches.
    `libc`: the one function it may call (named somewhere in its body)."""
    if libc is not None:
        assert any(libc in ins for ins in body), f"{name}: no call to {libc}"
        call_re = r"^$"
    labels = {ins[:-1]: i for i, ins in enumerate(body) if ins.endswith(":")}
    jcc = r"^(j[a-z]+|b\.[a-z]+|cbn?z|tbn?z)\s.*?(\.L\w+)$"
    jmp = r"^(jmp|b)\s+(\.L\w+)$"
    state, walked, work, tails = {0: 0}, set(), [0], 0

    def reach(i, depth):
        if i in state and state[i] != depth:
            raise AssertionError(f"{name}: sp offset differs at {body[i]}")
        if i not in state:
            state[i] = depth
            work.append(i)

    while work:
        i = work.pop()
        if i in walked:
            continue
        walked.add(i)
        depth = state[i]
        i += body[i].endswith(":") if i < len(body) else 0
        while i < len(body):
            ins = body[i]
            if ins.endswith(":"):
                reach(i, depth)  # falls through into the next block
                break
            assert not re.match(call_re, ins), f"{name}: calls out: {ins}"
            d = _sp_delta(ins, arch)
            if d is not None:
                depth += d
            if re.match(tail_re, ins) or re.match(r"^retq?\b", ins):
                assert depth == 0, f"{name}: {ins} with {depth} bytes of stack still allocated"
                tails += bool(re.match(tail_re, ins))
                break
            m = re.match(jcc, ins) or re.match(jmp, ins)
            if m and m.group(2) in labels:
                reach(labels[m.group(2)], depth)
            if re.match(jmp, ins):
                break
            i += 1
    return tails


@pytest.fixture(scope="module", params=sorted(TARGETS))
def target_asm(request):
    triple = request.param
    cpu = TARGETS[triple][0]
    return triple, {mode: _functions(compiler.emit_assembly(mode, triple, cpu))
                    for mode in ("direct", "indirect", "loop")}


def test_handlers_end_in_tail_branches_without_calls(target_asm):
    triple, by_mode = target_asm
    cpu, tail_re, call_re = TARGETS[triple]
    arch = triple.split("-")[0]
    for mode in ("direct", "indirect"):
        funcs = by_mode[mode]
        names = [f"h_{op.index}" for op in OP_LIST]
        assert all(n in funcs for n in names), f"{mode}: handlers missing from the assembly"
        no_tail = []
        libc = {f"h_{op.index}": LIBC_CALLS.get(op.name) for op in OP_LIST}
        for n in names + ["deadeye_enter"]:
            if not _check_function(n, funcs[n], arch, tail_re, call_re, libc.get(n)):
                no_tail.append(n)
        # Only handlers that never continue natively lack a tail branch: traps, and the
        # ops that always hand over to Python.
        native = set(llvmgen.native_ops()) - {"unreachable", "trap"}
        ends = {f"h_{op.index}" for op in OP_LIST if op.name not in native}
        assert len(ends) < 40
        assert set(no_tail) <= ends, f"{mode}: no tail dispatch in {sorted(set(no_tail) - ends)[:10]}"


def test_loop_dispatch_calls_nothing(target_asm):
    triple, by_mode = target_asm
    cpu, tail_re, call_re = TARGETS[triple]
    body = by_mode["loop"]["deadeye_enter"]
    calls = [i for i in body if re.match(call_re, i)]
    # memmove/memset (the bulk-memory ops) only: on x86-64 through a register loaded
    # with the symbol's address, on AArch64 directly
    named = [i for i in calls if "memmove" in i or "memset" in i]
    assert len(calls) - len(named) <= sum(("$memmove" in i or "$memset" in i) for i in body)


def test_object_cache_cold_then_warm(tmp_path):
    compiler.timings.pop("compile:loop", None)
    obj, cached = compiler.object_code("loop", tmp_path)
    assert not cached and "compile:loop" in compiler.timings
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".o"
    obj2, cached2 = compiler.object_code("loop", tmp_path)
    assert cached2 and obj2 == obj
    h = compiler.load("loop", tmp_path)
    assert h.cached and h.run
    triple, cpu, features = compiler.host_target()
    keys = {compiler.cache_key(m, triple, cpu, features) for m in ("direct", "indirect", "loop")}
    keys.add(compiler.cache_key("loop", "aarch64-unknown-linux-gnu", cpu, features))
    assert len(keys) == 4


def test_checker_catches_stack_left_allocated_and_calls():
    x86 = ("x86_64", r"jmpq?\s+\*", r"^(call|callq)\b")
    good = ["pushq %rbx", "testq %rax, %rax", "je .LBB1", "popq %rbx", "jmpq *%rax",
            ".LBB1:", "popq %rbx", "retq"]
    assert _check_function("good", good, *x86) == 1
    with pytest.raises(AssertionError, match="still allocated"):
        _check_function("bad", good[:3] + good[4:], *x86)
    with pytest.raises(AssertionError, match="calls out"):
        _check_function("call", ["callq *%rax", "retq"], *x86)
    a64 = ("aarch64", r"^br\s+x\d+", r"^(bl|blr)\b")
    with pytest.raises(AssertionError, match="still allocated"):
        _check_function("a", ["stp x19, x20, [sp, #-16]!", "br x5"], *a64)
    assert _check_function("a", ["stp x19, x20, [sp, #-16]!", "ldp x19, x20, [sp], #16", "br x5"], *a64) == 1
