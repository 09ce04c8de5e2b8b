"""CFG analyses: predecessors, reverse post-order, dominators, frontiers, loops, DOT."""

import networkx as nx

from deadeye.ir.cfg import CFG, cfg_graph, loop_depth, predecessors, reverse_postorder, to_dot
from deadeye.ir.text import parse_function

# block0 -> block1 (outer header) -> block2 (inner header) <-> block3 (inner body)
#        block2 -> block4 (outer latch) -> block1 ; block1 -> block5 (exit); block6 dead
NESTED = """
function %nest(v0: i32) -> i32 {
block0(v0: i32):
    jump block1
block1:
    br_if v0, block2, block5
block2:
    br_if v0, block3, block4
block3:
    jump block2
block4:
    jump block1
block5:
    return v0
block6:
    jump block5
}
"""

DIAMOND = """
function %d(v0: i32) -> i32 {
block0(v0: i32):
    br_if v0, block1, block2
block1:
    jump block3
block2:
    br_table v0, [block3, block1], block3
block3:
    return v0
}
"""


def blocks(func):
    return {b.id: b for b in func.blocks}


def ids(bs):
    return [b.id for b in bs]


def test_graph_predecessors_and_order():
    f = parse_function(DIAMOND)
    b = blocks(f)
    g = cfg_graph(f)
    assert isinstance(g, nx.DiGraph)
    assert set(g.edges) == {(b[0], b[1]), (b[0], b[2]), (b[1], b[3]), (b[2], b[3]), (b[2], b[1])}
    preds = predecessors(f)
    assert sorted(ids(preds[b[3]])) == [1, 2] and sorted(ids(preds[b[1]])) == [0, 2]
    rpo = reverse_postorder(f)
    assert rpo[0] is f.entry and rpo[-1] is b[3]
    pos = {blk: i for i, blk in enumerate(rpo)}
    for src, dst in g.edges:  # acyclic: every edge goes forward in RPO
        assert pos[src] < pos[dst]


def test_dominators_and_frontiers():
    f = parse_function(DIAMOND)
    b = blocks(f)
    cfg = CFG(f)
    assert cfg.idom[b[3]] is b[0] and cfg.idom[b[1]] is b[0] and cfg.idom[b[2]] is b[0]
    assert cfg.dominates(b[0], b[3]) and cfg.dominates(b[3], b[3])
    assert not cfg.dominates(b[1], b[3]) and not cfg.dominates(b[2], b[1])
    assert sorted(ids(cfg.dom_children(b[0]))) == [1, 2, 3]
    fr = cfg.dominance_frontiers()
    assert fr[b[1]] == {b[3]} and fr[b[2]] == {b[1], b[3]} and fr[b[0]] == set()
    tree = cfg.dominator_tree()
    assert set(tree.successors(b[0])) == {b[1], b[2], b[3]}


def test_natural_loops_and_depth():
    f = parse_function(NESTED)
    b = blocks(f)
    cfg = CFG(f)
    assert set(cfg.back_edges()) == {(b[3], b[2]), (b[4], b[1])}
    loops = cfg.loops()
    assert [lp.header.id for lp in loops] == [1, 2]
    outer, inner = loops
    assert outer.blocks == {b[1], b[2], b[3], b[4]} and inner.blocks == {b[2], b[3]}
    assert inner.parent is outer and outer.children == [inner]
    assert (outer.depth, inner.depth) == (1, 2)
    assert outer.latches == [b[4]] and inner.latches == [b[3]]
    depth = loop_depth(f)
    assert [depth[b[i]] for i in range(7)] == [0, 1, 2, 2, 1, 0, 0]
    assert cfg.innermost_loop(b[3]) is inner and cfg.innermost_loop(b[5]) is None
    # the unreachable block is in the graph, but not in orders or dominance
    assert b[6] in cfg.graph and b[6] not in cfg.reachable() and b[6] not in cfg.idom
    assert not cfg.dominates(b[0], b[6])


def test_self_loop():
    f = parse_function("""
function %s(v0: i32) {
block0(v0: i32):
    jump block1(v0)
block1(v1: i32):
    br_if v1, block1(v1), block2
block2:
    return
}""")
    cfg = CFG(f)
    (loop,) = cfg.loops()
    assert loop.header.id == 1 and loop.blocks == {loop.header} and loop.latches == [loop.header]


def test_to_dot():
    f = parse_function(NESTED)
    dot = to_dot(f)
    assert dot.startswith('digraph "nest" {')
    assert 'b1 -> b2 [label="then"];' in dot and 'b1 -> b5 [label="else"];' in dot
    assert 'b3 -> b2 [label="", style=dashed];' in dot  # back edge
    assert "br_if v0, block2, block5" in dot
    assert dot.count(" -> ") == 8
    plain = to_dot(parse_function(DIAMOND), instructions=False)
    assert 'b2 -> b3 [label="default"];' in plain and 'b2 -> b3 [label="0"];' in plain
    assert "return" not in plain
    assert "block0(v0: i32):" in plain


# -- properties against brute force on random functions -----------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402

from ir_testlib import random_functions  # noqa: E402


def _reach(g, start, removed=None):
    seen, work = set(), [start]
    while work:
        b = work.pop()
        if b in seen or b is removed:
            continue
        seen.add(b)
        work.extend(g.successors(b))
    return seen


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_functions(max_blocks=7, max_instrs=1))
def test_analyses_agree_with_brute_force(func):
    cfg = CFG(func)
    g = cfg.graph
    reach = _reach(g, func.entry)
    assert cfg.reachable() == reach
    rpo = cfg.reverse_postorder()
    pos = {b: i for i, b in enumerate(rpo)}
    for a in func.blocks:
        without = _reach(g, func.entry, removed=a) if a is not func.entry else set()
        for b in func.blocks:
            # a dominates b iff b is reachable and every path to it passes a
            expected = b in reach and (a is b or b not in without)
            assert cfg.dominates(a, b) == expected
    for src, dst in g.edges:
        if src in reach:
            # an edge goes backwards in RPO only to a DFS ancestor, which reaches its source
            if pos[dst] <= pos[src]:
                assert src in _reach(g, dst)
    for b in rpo:  # dominators come first
        assert all(pos[a] <= pos[b] for a in rpo if cfg.dominates(a, b))
    back = set(cfg.back_edges())
    for loop in cfg.loops():
        assert all((latch, loop.header) in back for latch in loop.latches)
        for b in loop.blocks:  # every body block reaches a latch and is dominated by the header
            assert cfg.dominates(loop.header, b)
            assert any(latch in _reach(g, b, removed=None) for latch in loop.latches)
    depth = cfg.loop_depth()
    for b in func.blocks:
        assert depth[b] == sum(b in lp.blocks for lp in cfg.loops())
    func.renumber()
    assert [b.id for b in func.blocks] == list(range(len(func.blocks)))
    assert sorted(v.id for v in func.values()) == list(range(func.next_value))
