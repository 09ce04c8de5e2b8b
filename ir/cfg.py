"""Control-flow analyses of an IR function, on networkx.

`CFG(func)` builds the control-flow graph once (a `networkx.DiGraph` whose nodes are the
function's Blocks, with an edge per distinct successor) and answers, computing each
lazily: predecessors/successors, reverse post-order of the reachable blocks, the
dominator tree (`idom`, `dominates`, `dom_children`), dominance frontiers, natural loops
(a back edge is an edge whose target dominates its source; the loop of a header is the
header plus every block that reaches one of its latches without passing the header) and
the loop depth of every block. `to_dot(func)` renders the CFG as Graphviz DOT text.

Unreachable blocks are graph nodes but appear in no dominator, order or loop result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from deadeye.ir.function import Block, Function


def cfg_graph(func: Function) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(func.blocks)
    for b in func.blocks:
        for s in b.successors():
            g.add_edge(b, s)
    return g


@dataclass(eq=False)
class Loop:
    header: Block
    latches: list[Block]  # sources of the back edges to the header
    blocks: set[Block]  # header included
    parent: "Loop | None" = None
    children: list["Loop"] = field(default_factory=list)

    @property
    def depth(self) -> int:
        d, loop = 1, self.parent
        while loop is not None:
            d, loop = d + 1, loop.parent
        return d

    def __repr__(self) -> str:
        return f"<Loop {self.header!r} {len(self.blocks)} blocks depth {self.depth}>"


class CFG:
    def __init__(self, func: Function):
        self.func = func
        self.graph = cfg_graph(func)
        self.entry = func.blocks[0]
        self._rpo: list[Block] | None = None
        self._idom: dict[Block, Block] | None = None
        self._children: dict[Block, list[Block]] | None = None
        self._loops: list[Loop] | None = None
        self._frontiers: dict | None = None

    # -- structure ------------------------------------------------------------------------
    def predecessors(self, block: Block) -> list[Block]:
        return list(self.graph.predecessors(block))

    def successors(self, block: Block) -> list[Block]:
        return list(self.graph.successors(block))

    def reachable(self) -> set[Block]:
        return set(self.reverse_postorder())

    def reverse_postorder(self) -> list[Block]:
        """Reachable blocks, each before its successors except along back edges. Among
        successors, the first target is visited first (so it comes first in the order)."""
        if self._rpo is None:
            post: list[Block] = []
            seen = {self.entry}
            stack = [(self.entry, iter(self.entry.successors()))]
            while stack:
                block, it = stack[-1]
                for s in it:
                    if s not in seen:
                        seen.add(s)
                        stack.append((s, iter(s.successors())))
                        break
                else:
                    stack.pop()
                    post.append(block)
            post.reverse()
            self._rpo = post
        return self._rpo

    # -- dominance --------------------------------------------------------------------------
    @property
    def idom(self) -> dict[Block, Block]:
        """Immediate dominator of every reachable block (the entry maps to itself)."""
        if self._idom is None:
            idom = dict(nx.immediate_dominators(self.graph, self.entry))
            idom[self.entry] = self.entry  # networkx versions differ on including it
            self._idom = idom
        return self._idom

    def dominates(self, a: Block, b: Block) -> bool:
        """True when every path from the entry to `b` passes `a` (a block dominates
        itself). False when `b` is unreachable."""
        idom = self.idom
        if b not in idom:
            return False
        while True:
            if a is b:
                return True
            up = idom[b]
            if up is b:
                return False
            b = up

    def dom_children(self, block: Block) -> list[Block]:
        """Children in the dominator tree, in reverse post-order."""
        if self._children is None:
            children: dict[Block, list[Block]] = {b: [] for b in self.idom}
            for b in self.reverse_postorder():
                up = self.idom[b]
                if up is not b:
                    children[up].append(b)
            self._children = children
        return self._children.get(block, [])

    def dominator_tree(self) -> nx.DiGraph:
        tree = nx.DiGraph()
        tree.add_nodes_from(self.idom)
        tree.add_edges_from((up, b) for b, up in self.idom.items() if up is not b)
        return tree

    def dominance_frontiers(self) -> dict[Block, set[Block]]:
        if self._frontiers is None:
            self._frontiers = nx.dominance_frontiers(self.graph, self.entry)
        return self._frontiers

    # -- loops ----------------------------------------------------------------------------
    def back_edges(self) -> list[tuple[Block, Block]]:
        return [(b, s) for b in self.reverse_postorder() for s in b.successors()
                if self.dominates(s, b)]

    def loops(self) -> list[Loop]:
        """Natural loops, one per header (back edges to one header merge), outer loops
        before the loops they contain."""
        if self._loops is None:
            latches: dict[Block, list[Block]] = {}
            for src, header in self.back_edges():
                latches.setdefault(header, []).append(src)
            loops = []
            for header, srcs in latches.items():
                body = {header}
                work = [s for s in srcs if s is not header]
                while work:
                    b = work.pop()
                    if b in body:
                        continue
                    body.add(b)
                    work.extend(p for p in self.graph.predecessors(b) if p in self.idom)
                loops.append(Loop(header, srcs, body))
            # Nesting: the parent is the smallest other loop containing the header.
            loops.sort(key=lambda lp: len(lp.blocks), reverse=True)
            for i, loop in enumerate(loops):
                for outer in reversed(loops[:i]):
                    if loop.header in outer.blocks and outer is not loop:
                        loop.parent = outer
                        outer.children.append(loop)
                        break
            self._loops = loops
        return self._loops

    def loop_depth(self) -> dict[Block, int]:
        """Number of natural loops containing each block (0 outside loops)."""
        depth = {b: 0 for b in self.func.blocks}
        for loop in self.loops():
            for b in loop.blocks:
                depth[b] += 1
        return depth

    def innermost_loop(self, block: Block) -> Loop | None:
        best = None
        for loop in self.loops():
            if block in loop.blocks and (best is None or len(loop.blocks) < len(best.blocks)):
                best = loop
        return best


def predecessors(func: Function) -> dict[Block, list[Block]]:
    """Distinct predecessors of every block."""
    g = cfg_graph(func)
    return {b: list(g.predecessors(b)) for b in func.blocks}


def reverse_postorder(func: Function) -> list[Block]:
    return CFG(func).reverse_postorder()


def loop_depth(func: Function) -> dict[Block, int]:
    return CFG(func).loop_depth()


def _dot_escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace('"', '\\"').replace("{", "\\{")
            .replace("}", "\\}").replace("<", "\\<").replace(">", "\\>").replace("|", "\\|"))


def to_dot(func: Function, instructions: bool = True) -> str:
    """Graphviz DOT text for the CFG: one record node per block (with its instructions
    when `instructions`), edges labelled with the branch kind, back edges dashed."""
    from deadeye.ir.text import print_block_header, print_instruction

    cfg = CFG(func)
    back = set(cfg.back_edges())
    lines = [f'digraph "{_dot_escape(func.name)}" {{', '  node [shape=record, fontname="monospace"];']
    for b in func.blocks:
        label = [_dot_escape(print_block_header(b))]
        if instructions:
            label += [_dot_escape(print_instruction(i)) for i in b.instrs]
        text = "\\l".join(label) + "\\l"
        lines.append(f'  b{b.id} [label="{{{text}}}"];')
    for b in func.blocks:
        term = b.terminator
        if term is None:
            continue
        for k, call in enumerate(term.targets):
            if term.op.name == "br_if":
                tag = "then" if k == 0 else "else"
            elif term.op.name == "br_table":
                tag = "default" if k == len(term.targets) - 1 else str(k)
            else:
                tag = ""
            style = ", style=dashed" if (b, call.block) in back else ""
            lines.append(f'  b{b.id} -> b{call.block.id} [label="{tag}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"
