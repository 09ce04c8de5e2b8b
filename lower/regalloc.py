"""Register allocation: VRegs -> frame slots, and the base of every call window.

Liveness is a backward dataflow over the VCode blocks (bit sets in Python ints). Each
VReg gets one live interval over the linear layout (positions: a use at 2i, a def at
2i+1 for the i-th instruction, a block's params defined at its header position), covering
every block where it is live-in or live-out. Then **linear scan**: intervals by start,
expired ones give their slots back, and each new one takes, in order of preference, the
slot of a *hinted* VReg (the other end of a block-parameter edge, so that the edge's move
disappears when their lifetimes meet) or the lowest free slot (v128: the lowest free pair).
A def may take the slot of a value whose last use is the same op: every op reads all its
operands before writing.

Why linear scan and not graph colouring (networkx): with one slot file of 65536 entries
there is no spilling to decide, only frame size and moves. SSA interference graphs are
chordal, so an optimal colouring needs exactly max-live colours; that bounds what a
colouring allocator could gain. Measured on the 748 functions of the Sightglass modules
(slots used by values, excluding call windows and the scratch slot): -O0 linear scan 6.01
slots per function against a max-live lower bound of 5.23; -O2 14.67 against 13.90. So
colouring could save under one slot per function (5-15%), while building the interference
graph costs O(n^2) edges in Python on the big functions of compiled C (ed25519 and switch
keep hundreds of values live), which a lazily compiling engine pays at first call. Linear
scan in layout (dominance) order with lowest-free-slot choice is linear-ish and close to
the bound; the hints give the coalescing that matters (block parameters, including
loop-carried values, and call windows, below).

Fixed slots: the entry block's params sit at 0.. (the calling convention). A call's
window base B is chosen above every slot live across the call (and above the index
register a `call_indirect` reads); arguments are moved to B.. before it and results read
from B.. after it (parallel moves, see `moves.py`). After the scan, an argument that dies
at its call, or a result, whose window slot is free for its whole interval moves there,
so it is computed in place and its move disappears (a value live across another call
keeps its slot: that call's window was placed above it).
The frame ends with one scratch slot that parallel moves use to break cycles.
"""

from __future__ import annotations

import bisect
import heapq

from deadeye.ir.errors import ValidationError

from .vcode import CallSite, VFunc, VInst, VReg

MAX_SLOTS = 1 << 16


class Allocation:
    """`slot[vreg id]` (-1: never defined), `base[id(call site)]`, `frame_size` (including
    the scratch slot), `scratch`."""

    def __init__(self, slot, base, frame_size, scratch):
        self.slot = slot
        self.base = base
        self.frame_size = frame_size
        self.scratch = scratch


def _bits(x: int):
    while x:
        low = x & -x
        yield low.bit_length() - 1
        x ^= low


def number(vfunc: VFunc):
    """Positions: (block header index, [instruction index]) per block, in layout order."""
    pos, out = 0, []
    for b in vfunc.blocks:
        head = pos
        pos += 1
        idx = list(range(pos, pos + len(b.insts)))
        pos += len(b.insts)
        out.append((head, idx))
    return out


def liveness(vfunc: VFunc) -> tuple[list[int], list[int]]:
    """(live-in, live-out) bit sets of VReg ids per block (layout order)."""
    n = len(vfunc.blocks)
    gen, kill = [0] * n, [0] * n
    for bi, b in enumerate(vfunc.blocks):
        g = k = 0
        for p in b.params:
            k |= 1 << p.id
        for ins in b.insts:
            for u in ins.uses():
                if not k >> u.id & 1:
                    g |= 1 << u.id
            for d in ins.defs():
                k |= 1 << d.id
        gen[bi], kill[bi] = g, k
    index = {b: i for i, b in enumerate(vfunc.blocks)}
    succs = [[index[s] for s in b.successors()] for b in vfunc.blocks]
    live_in, live_out = [0] * n, [0] * n
    changed = True
    while changed:
        changed = False
        for bi in range(n - 1, -1, -1):
            out = 0
            for s in succs[bi]:
                out |= live_in[s]
            inn = gen[bi] | (out & ~kill[bi])
            if out != live_out[bi] or inn != live_in[bi]:
                live_out[bi], live_in[bi] = out, inn
                changed = True
    return live_in, live_out


def allocate(vfunc: VFunc, results_slots: int = 0) -> Allocation:
    nv = len(vfunc.vregs)
    start = [-1] * nv
    end = [-1] * nv
    positions = number(vfunc)
    live_in, live_out = liveness(vfunc)
    hints: list[list] = [[] for _ in range(nv)]
    calls: list[tuple[int, VInst]] = []
    tail_slots = 0
    for b, (head, idx) in zip(vfunc.blocks, positions):
        for p in b.params:
            start[p.id] = 2 * head + 1
            end[p.id] = max(end[p.id], 2 * head + 1)
        for i, ins in zip(idx, b.insts):
            for u in ins.uses():
                end[u.id] = max(end[u.id], 2 * i)
            for d in ins.defs():
                start[d.id] = 2 * i + 1
                end[d.id] = max(end[d.id], 2 * i + 1)
            for e in ins.edges():
                for a, p in zip(e.args, e.block.params):
                    hints[p.id].append(a)
                    hints[a.id].append(p)
            if any(isinstance(a, CallSite) for a in ins.args):
                calls.append((2 * i, ins))
            elif ins.op in ("return_call", "return_call_indirect", "return"):
                # The op moves its listed slots to 0..: the frame must hold them.
                tail_slots = max(tail_slots, sum(r.width for r in ins.args[-1]))
    # A value live across blocks lives (no holes) up to the last block, in layout order,
    # where it is live: walking the blocks backwards, only a value's first sighting
    # matters, which keeps this linear in values rather than blocks x live values.
    seen_out = seen_in = 0
    for bi in range(len(positions) - 1, -1, -1):
        head, idx = positions[bi]
        last = 2 * idx[-1] + 1 if idx else 2 * head + 1
        for v in _bits(live_out[bi] & ~seen_out):
            if end[v] < last:
                end[v] = last
        seen_out |= live_out[bi]
        for v in _bits(live_in[bi] & ~seen_in):
            if end[v] < 2 * head:
                end[v] = 2 * head
        seen_in |= live_in[bi]
    vregs = vfunc.vregs
    slot = [-1] * nv
    occ = bytearray(MAX_SLOTS + 2)
    high = 0
    active: list[tuple[int, int]] = []  # heap of (end, vreg id)
    live: set[int] = set()
    # The entry block's params: fixed slots 0.. in order.
    at = 0
    for p in vfunc.params:
        slot[p.id] = at
        for k in range(p.width):
            occ[at + k] = 1
        at += p.width
        heapq.heappush(active, (end[p.id], p.id))
        live.add(p.id)
    high = at
    fixed = {p.id for p in vfunc.params}
    order = sorted((v for v in range(nv) if start[v] >= 0 and v not in fixed), key=start.__getitem__)
    base: dict[int, int] = {}
    ci = 0
    top_needed = 0

    def release(v):
        for k in range(vregs[v].width):
            occ[slot[v] + k] = 0
        live.discard(v)

    def place_calls(upto):
        nonlocal ci, top_needed
        while ci < len(calls) and calls[ci][0] < upto:
            u, ins = calls[ci]
            ci += 1
            while active and active[0][0] < u:
                release(heapq.heappop(active)[1])
            b = 0
            for v in live:
                if end[v] > u + 1 and start[v] < u:
                    b = max(b, slot[v] + vregs[v].width)
            # A register the call op itself reads (call_indirect's index) must survive
            # the argument moves into the window.
            for a in ins.args:
                if isinstance(a, VReg):
                    b = max(b, slot[a.id] + a.width)
            site = next(a for a in ins.args if isinstance(a, CallSite))
            base[id(site)] = b
            need = max(sum(r.width for r in site.args), sum(r.width for r in site.results))
            top_needed = max(top_needed, b + need)

    for v in order:
        s = start[v]
        place_calls(s)
        while active and active[0][0] < s:
            release(heapq.heappop(active)[1])
        w = vregs[v].width
        chosen = -1
        for h in hints[v]:
            hs = slot[h.id]
            if hs >= 0 and h.width == w and all(not occ[hs + k] for k in range(w)):
                chosen = hs
                break
        if chosen < 0:
            chosen = occ.find(b"\0" * w)
        if chosen < 0 or chosen + w > MAX_SLOTS - 1:
            raise ValidationError(f"function {vfunc.name} needs more than {MAX_SLOTS - 1} "
                                  "register slots")
        slot[v] = chosen
        for k in range(w):
            occ[chosen + k] = 1
        high = max(high, chosen + w)
        heapq.heappush(active, (end[v], v))
        live.add(v)
    place_calls(1 << 62)
    high = max(high, _into_windows(vfunc, calls, base, slot, start, end, fixed))
    frame = max(high, top_needed, results_slots, at, tail_slots)
    if frame + 1 > MAX_SLOTS:
        raise ValidationError(f"function {vfunc.name} needs a frame of more than {MAX_SLOTS} slots")
    return Allocation(slot, base, frame + 1, frame)


def _into_windows(vfunc, calls, base, slot, start, end, fixed) -> int:
    """Move call arguments and results into their window slots when those slots are free
    for the value's whole interval, so they are computed in place (no moves). A value
    live across another call keeps its slot (that call's window was placed above it).
    Returns the highest slot end used."""
    by_slot: dict[int, list[int]] = {}
    for v, s in enumerate(slot):
        if s >= 0:
            for k in range(vfunc.vregs[v].width):
                by_slot.setdefault(s + k, []).append(v)
    points = [u for u, _ in calls]

    def call_inside(lo, hi):
        i = bisect.bisect_right(points, lo)
        return i < len(points) and points[i] < hi

    def try_move(r, target):
        v = r.id
        if slot[v] == target or v in fixed or call_inside(start[v], end[v]):
            return
        for k in range(r.width):
            for o in by_slot.get(target + k, ()):
                if o != v and start[o] <= end[v] and start[v] <= end[o]:
                    return
        for k in range(r.width):
            by_slot[slot[v] + k].remove(v)
            by_slot.setdefault(target + k, []).append(v)
        slot[v] = target

    high = 0
    for u, ins in calls:
        site = next(a for a in ins.args if isinstance(a, CallSite))
        at = base[id(site)]
        for a in site.args:
            if end[a.id] == u:  # dies at the call: may live in the window
                try_move(a, at)
            at += a.width
        at = base[id(site)]
        for r in site.results:
            try_move(r, at)
            at += r.width
        high = max(high, at)
    return max([s + vfunc.vregs[v].width for v, s in enumerate(slot) if s >= 0] + [high])
