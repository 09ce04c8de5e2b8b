"""Parallel moves: sequence a set of simultaneous slot copies into ordinary moves.

A parallel move reads every source before writing any destination. `sequence` works at
slot granularity (a v128 move is two slot moves, so a v128 may overlap one-slot values
in any way), emits a move as soon as its destination is no longer needed as a source,
and breaks each remaining cycle by parking one slot in a scratch slot. `to_ops` then
merges neighbouring slot pairs back into `mov128` where that is equivalent.
"""

from __future__ import annotations

from deadeye.ir.errors import ValidationError


def expand(moves) -> dict[int, int]:
    """(dst, src, width) moves -> {dst slot: src slot}, dropping self-moves."""
    out: dict[int, int] = {}
    for dst, src, width in moves:
        for k in range(width):
            d, s = dst + k, src + k
            if d in out and out[d] != s:
                raise ValidationError(f"parallel move writes slot {d} twice")
            if d != s:
                out[d] = s
    return out


def sequence(moves: dict[int, int], scratch: int) -> list[tuple[int, int]]:
    """An order of (dst, src) slot copies with the effect of the parallel move `moves`
    ({dst: src}); `scratch` is a slot that is neither a source nor a destination."""
    if scratch in moves or scratch in moves.values():
        raise ValidationError("the scratch slot takes part in the parallel move")
    pending = dict(moves)
    readers: dict[int, int] = {}  # src slot -> how many pending moves read it
    for s in pending.values():
        readers[s] = readers.get(s, 0) + 1
    out: list[tuple[int, int]] = []
    ready = [d for d in pending if readers.get(d, 0) == 0]
    while pending:
        while ready:
            d = ready.pop()
            s = pending.pop(d)
            out.append((d, s))
            readers[s] -= 1
            if readers[s] == 0 and s in pending:
                ready.append(s)
        if not pending:
            break
        # Only cycles remain: every destination is still read. Park one in the scratch.
        d = next(iter(pending))
        out.append((scratch, d))
        for k, s in pending.items():
            if s == d:
                pending[k] = scratch
        readers[scratch] = readers.pop(d)
        ready.append(d)
    return out


def to_ops(seq: list[tuple[int, int]]) -> list[tuple[str, int, int]]:
    """("mov"|"mov128", dst, src) ops for a sequenced move list: two consecutive copies
    (d, s), (d+1, s+1) become one mov128 when the pair's slots do not overlap."""
    out = []
    i = 0
    while i < len(seq):
        d, s = seq[i]
        if i + 1 < len(seq):
            d2, s2 = seq[i + 1]
            lo = None
            if d2 == d + 1 and s2 == s + 1:
                lo = (d, s)
            elif d2 == d - 1 and s2 == s - 1:
                lo = (d2, s2)
            if lo is not None and not {lo[0], lo[0] + 1} & {lo[1], lo[1] + 1}:
                out.append(("mov128", lo[0], lo[1]))
                i += 2
                continue
        out.append(("mov", d, s))
        i += 1
    return out


def parallel_move(moves, scratch: int) -> list[tuple[str, int, int]]:
    """Ops for the parallel move of (dst, src, width) triples."""
    return to_ops(sequence(expand(moves), scratch))
