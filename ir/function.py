"""The SSA IR data structures.

A `Function` is a list of `Block`s; the first is the entry block, whose parameters are the
function's parameters. There are no phi nodes: a block declares typed **block
parameters**, and every branch to it passes one argument per parameter. Each SSA `Value`
is defined exactly once, either as a block parameter or as a result of an `Instruction`,
and has a small integer id (`v7` in the text form) unique in its function.

An `Instruction` stores its opcode record (`op`, an `opcodes.OpInfo`), its operand Values
(`args`), its immediates (`imm`, a tuple in the order of `op.imm`), its result Values
(zero, one or several: calls return several), and, for terminators, its branch targets
(`targets`, a list of `BlockCall(block, args)`). A block's `instrs` ends with exactly one
terminator. Blocks also record `fuel` (how many Wasm instructions they account for:
later phases charge fuel per block) and optionally `offset` (the Wasm byte offset they
start at). Instructions may carry the byte `offset` of the Wasm instruction they come
from (for trap backtraces).

An `IRModule` holds several functions plus the module facts their instructions refer to
(types, function signatures, globals, tables, memory/data/elem counts); it also serves as
the `env` that typing rules consult for calls, globals and tables.

See `text.py` for the textual form and `builder.py` for how to make functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deadeye.ir.errors import ValidationError
from deadeye.ir.opcodes import OpInfo
from deadeye.ir.types import FuncType, ValType


class Value:
    """An SSA value: `id` (unique in its function), `type`, and its definition: `defn` is
    the defining Instruction (then `index` is the result position) or the Block it is a
    parameter of (then `index` is irrelevant; see Block.params)."""

    __slots__ = ("id", "type", "defn", "index")

    def __init__(self, id: int, type: ValType, defn, index: int = 0):
        self.id = id
        self.type = type
        self.defn = defn
        self.index = index

    @property
    def is_param(self) -> bool:
        return isinstance(self.defn, Block)

    def __repr__(self) -> str:
        return f"v{self.id}"


class BlockCall:
    """A branch edge: the target block and the arguments bound to its parameters."""

    __slots__ = ("block", "args")

    def __init__(self, block: "Block", args=()):
        self.block = block
        self.args = list(args)

    def __repr__(self) -> str:
        return f"{self.block!r}({', '.join(map(repr, self.args))})"


class Instruction:
    __slots__ = ("op", "args", "imm", "results", "targets", "block", "offset")

    def __init__(self, op: OpInfo, args=(), imm: tuple = (), targets=(), offset=None):
        self.op = op
        self.args = list(args)
        self.imm = tuple(imm)
        self.results: tuple[Value, ...] = ()
        self.targets: list[BlockCall] = list(targets)
        self.block: Block | None = None
        self.offset = offset

    @property
    def is_terminator(self) -> bool:
        return self.op.terminator

    def __repr__(self) -> str:
        res = ", ".join(map(repr, self.results))
        return f"<{res + ' = ' if res else ''}{self.op.name} {self.args} {self.imm}>"


class Block:
    __slots__ = ("id", "params", "instrs", "fuel", "offset")

    def __init__(self, id: int, fuel: int = 0, offset: int | None = None):
        self.id = id
        self.params: list[Value] = []
        self.instrs: list[Instruction] = []
        self.fuel = fuel
        self.offset = offset

    @property
    def terminator(self) -> Instruction | None:
        """The last instruction when it is a terminator, else None."""
        if self.instrs and self.instrs[-1].op.terminator:
            return self.instrs[-1]
        return None

    @property
    def body(self) -> list[Instruction]:
        """The instructions before the terminator."""
        return self.instrs[:-1] if self.terminator is not None else list(self.instrs)

    def successors(self) -> list["Block"]:
        """Distinct successor blocks, in target order."""
        term = self.terminator
        if term is None:
            return []
        # dict keeps the first-seen order and is linear for huge br_tables
        return list(dict.fromkeys(t.block for t in term.targets))

    def __repr__(self) -> str:
        return f"block{self.id}"


class Function:
    """`name`, `sig` (a FuncType), `blocks` (entry first), and optionally `index` (its
    function index in the module)."""

    def __init__(self, name: str, sig: FuncType, index: int | None = None):
        self.name = name
        self.sig = sig
        self.index = index
        self.blocks: list[Block] = []
        self.next_value = 0
        self.next_block = 0

    @property
    def entry(self) -> Block:
        return self.blocks[0]

    @property
    def params(self) -> list[Value]:
        return self.entry.params

    # -- low-level constructors (the builder wraps these) ---------------------------------
    def new_value(self, type: ValType, defn, index: int = 0, id: int | None = None) -> Value:
        if id is None:
            id = self.next_value
        self.next_value = max(self.next_value, id + 1)
        return Value(id, type, defn, index)

    def new_block(self, fuel: int = 0, offset: int | None = None, id: int | None = None) -> Block:
        if id is None:
            id = self.next_block
        self.next_block = max(self.next_block, id + 1)
        block = Block(id, fuel, offset)
        self.blocks.append(block)
        return block

    def instructions(self):
        """Every instruction, block by block."""
        for block in self.blocks:
            yield from block.instrs

    def values(self):
        """Every defined value: block parameters and instruction results."""
        for block in self.blocks:
            yield from block.params
            for ins in block.instrs:
                yield from ins.results

    def uses(self) -> dict[Value, list[Instruction]]:
        """For every used value, the instructions using it (as an operand or a branch
        argument), once per use."""
        out: dict[Value, list[Instruction]] = {}
        for ins in self.instructions():
            for a in ins.args:
                out.setdefault(a, []).append(ins)
            for call in ins.targets:
                for a in call.args:
                    out.setdefault(a, []).append(ins)
        return out

    def replace_uses(self, mapping: dict[Value, Value]) -> None:
        """Rewrite every operand and branch argument through `mapping` (chains such as
        a->b, b->c are followed)."""

        def resolve(v):
            seen = 0
            while v in mapping:
                v = mapping[v]
                seen += 1
                if seen > len(mapping):
                    raise ValidationError("replace_uses: the mapping has a cycle")
            return v

        for ins in self.instructions():
            ins.args = [resolve(a) for a in ins.args]
            for call in ins.targets:
                call.args = [resolve(a) for a in call.args]

    def renumber(self) -> None:
        """Give blocks and values dense ids (0, 1, ...) in layout order, e.g. after passes
        removed some, so that ids can index flat arrays."""
        for i, block in enumerate(self.blocks):
            block.id = i
        n = 0
        for v in self.values():
            v.id = n
            n += 1
        self.next_block, self.next_value = len(self.blocks), n

    def as_tuple(self) -> tuple:
        """A plain nested-tuple image of the whole function (ids, types, ops, immediates,
        targets, fuel, offsets): two functions are identical when their images are equal."""

        def vals(vs):
            return tuple((v.id, int(v.type)) for v in vs)

        blocks = []
        for b in self.blocks:
            instrs = tuple(
                (i.op.name, tuple(a.id for a in i.args), i.imm, vals(i.results),
                 tuple((t.block.id, tuple(a.id for a in t.args)) for t in i.targets), i.offset)
                for i in b.instrs)
            blocks.append((b.id, vals(b.params), b.fuel, b.offset, instrs))
        return (self.name, self.sig, self.index, tuple(blocks))

    def __repr__(self) -> str:
        return f"<Function %{self.name} {self.sig}>"

    def __str__(self) -> str:
        from deadeye.ir.text import print_function

        return print_function(self)


@dataclass
class IRModule:
    """Functions plus the module facts they reference. Index spaces count imports first,
    as in Wasm: `func_types[i]` is the type index of function i; `globals[i]` is
    (type, mutable); `tables[i]` the element type of table i; `elems[i]` the element type
    of segment i."""

    types: list[FuncType] = field(default_factory=list)
    func_types: list[int] = field(default_factory=list)
    globals: list[tuple[ValType, bool]] = field(default_factory=list)
    tables: list[ValType] = field(default_factory=list)
    memories: int = 0
    datas: int = 0
    elems: list[ValType] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)

    def func_type(self, index: int) -> FuncType:
        return self.types[self.func_types[index]]

    def index_space_size(self, kind: str) -> int:
        """How many entities of an immediate kind ("func", "type", "table", "mem",
        "global", "data", "elem") the module has."""
        return {"func": len(self.func_types), "type": len(self.types),
                "table": len(self.tables), "mem": self.memories, "global": len(self.globals),
                "data": self.datas, "elem": len(self.elems)}[kind]
