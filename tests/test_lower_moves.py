"""Parallel moves: any permutation, fan-out copies and v128 pairs, sequenced with one
scratch slot, must leave every destination holding its source's old value."""

from hypothesis import given, settings, strategies as st

from deadeye.interp.isa.refexec import RefMachine, execute
from deadeye.lower.moves import expand, parallel_move, sequence

N = 12  # slots 0..N-1; the scratch is slot N


def run_ops(ops, nslots):
    """Execute the move ops on the ISA reference semantics; the final registers."""
    m = RefMachine(nslots)
    m.regs = [1000 + i for i in range(nslots)]
    for op, d, s in ops:
        execute(m, op, d, s)
    return m.regs


def expected(triples, nslots):
    regs = [1000 + i for i in range(nslots)]
    want = list(regs)
    for d, s, w in triples:
        for k in range(w):
            want[d + k] = regs[s + k]
    return want


@st.composite
def move_sets(draw):
    """Destinations disjoint (a parallel move writes each slot once); sources anything,
    so permutations with cycles, fan-out and self-moves all occur. Some moves are v128
    pairs (two consecutive slots)."""
    free = list(range(N))
    triples = []
    for _ in range(draw(st.integers(0, 8))):
        w = draw(st.sampled_from([1, 1, 2]))
        cands = [d for d in free if all(d + k in free for k in range(w))]
        if not cands:
            break
        d = draw(st.sampled_from(cands))
        for k in range(w):
            free.remove(d + k)
        s = draw(st.integers(0, N - w))
        triples.append((d, s, w))
    return triples


@settings(max_examples=300, deadline=None)
@given(move_sets())
def test_parallel_moves_match_simultaneous_assignment(triples):
    ops = parallel_move(triples, N)
    assert run_ops(ops, N + 1)[:N] == expected(triples, N + 1)[:N]
    # Never more than one op per moved slot plus one scratch save per cycle.
    moved = len(expand(triples))
    assert sum(2 if op == "mov128" else 1 for op, _, _ in ops) <= moved + moved // 2 + 1


@settings(max_examples=200, deadline=None)
@given(st.permutations(list(range(N))))
def test_full_permutation(perm):
    triples = [(d, s, 1) for d, s in enumerate(perm)]
    ops = parallel_move(triples, N)
    assert run_ops(ops, N + 1)[:N] == expected(triples, N + 1)[:N]
    cycles, seen = 0, set()
    for i in range(N):
        if i in seen or perm[i] == i:
            continue
        cycles += 1
        j = i
        while j not in seen:
            seen.add(j)
            j = perm[j]
    fixed = sum(1 for i in range(N) if perm[i] == i)
    assert len(sequence(expand(triples), N)) == N - fixed + cycles


def test_swap_of_v128_pairs_uses_scratch_and_mov128():
    ops = parallel_move([(0, 2, 2), (2, 0, 2)], 4)
    assert run_ops(ops, 5)[:4] == [1002, 1003, 1000, 1001]
    assert any(s == 4 or d == 4 for _, d, s in ops)  # the cycle went through the scratch


def test_nonoverlapping_pair_becomes_mov128():
    assert parallel_move([(4, 0, 2)], 8) == [("mov128", 4, 0)]
    # Overlapping pair (shift by one slot) must stay two ordered slot moves.
    ops = parallel_move([(1, 0, 2)], 8)
    assert [op for op, _, _ in ops] == ["mov", "mov"]
    assert run_ops(ops, 9)[:3] == [1000, 1000, 1001]
