"""The textual form of the IR: `print_function`/`parse_function` and, for a module with
the facts its functions refer to, `print_module`/`parse_module`. Printing then parsing
gives back an identical function (same ids, types, immediates, fuel and offsets).

A function:

    function %fib(v0: i32) -> i32 index=3 {
    block0(v0: i32):
        v1 = i32.const 2
        v2 = i32.lt_s v0, v1
        br_if v2, block1, block2(v0)
    block1 fuel=2:
        return v0
    block2(v3: i32) fuel=7 @0x2a:
        v4 = i32.const -1
        v5 = i32.add v3, v4
        v6: i32 = call 3 v5 @0x31
        v7 = f64.const 0x3ff8000000000000  ; 1.5
        return v6
    }

- `%name` is the function's name (quoted as `%"..."` when it has other characters);
  the header repeats the entry block's parameters, then the results after `->`
  (comma-separated, omitted when none), then optional `index=N` (its function index).
- A block header is `blockN`, its parameters in parentheses (omitted when none), then
  optional `fuel=N` (Wasm instructions it accounts for) and `@0xOFFSET` (Wasm byte
  offset), then a colon. The first block is the entry.
- An instruction is `results = op immediates operands`: results are `vN` (with `: type`
  for calls, `global.get` and `table.get`, whose types come from the module), the op is
  its opcode-table name, immediates come before operands: bare when the op has one
  (`i32.const 5`, `call 3`, `global.get 0`, `ref.null funcref`), else `name=value`
  (`i32.load mem=0 offset=16 v1`); operands are comma-separated values. A trailing
  `@0xOFFSET` records the Wasm instruction's byte offset.
- Integer constants print in signed decimal (hex and unsigned are accepted too); float
  constants print their exact bit pattern in hex with the value in a comment. For floats
  a hex literal is always the bit pattern, while a decimal literal (`2`, `1.5`, `-inf`,
  `nan:0x200000`) is the value; `v128.const` prints 32 hex digits; `i8x16.shuffle`
  takes `[l0, ..., l15]`; `trap` takes a JSON-style string.
- Terminators: `jump block3(v1, v2)`, `br_if v2, block1(v0), block2` (then, else),
  `br_table v5, [block1(v1), block2], block3(v2)` (targets, then the default),
  `return v1, v2`, `unreachable`, `trap "message"`, `return_call 3 v1, v2`,
  `return_call_indirect type=1 table=0 v1, v2, v9` (the callee index last).
- `;` starts a comment that runs to the end of the line.

A module lists its facts, then its functions:

    type 0 = (i32, i32) -> (i32)
    func 0 = type 0
    global 0 = mut i64
    table 0 = funcref
    memories 1
    datas 2
    elem 0 = funcref

Parse errors raise `DecodeError` citing `line L:C`. The parser checks syntax, op names,
immediates and that every value and block used is defined; type checking is the
verifier's job (`verify.py`).
"""

from __future__ import annotations

import json
import math
import re
import struct
from functools import lru_cache
from pathlib import Path

import lark

from deadeye.ir import opcodes
from deadeye.ir.errors import DecodeError, ValidationError
from deadeye.ir.function import Block, BlockCall, Function, Instruction, IRModule, Value
from deadeye.ir.types import FuncType, ValType

# -- printing -----------------------------------------------------------------------------

_SIMPLE_NAME = re.compile(r"[A-Za-z0-9_.$\-]+\Z")


def _fname(name: str) -> str:
    return "%" + (name if _SIMPLE_NAME.match(name) else json.dumps(name))


def _signed(bits: int, width: int) -> int:
    return bits - (1 << width) if bits >> (width - 1) else bits


def _float_text(bits: int, width: int) -> str:
    """A readable rendering of float bits, for comments."""
    exp_mask, mant_bits = ((0xFF, 23) if width == 32 else (0x7FF, 52))
    sign = "-" if bits >> (width - 1) else ""
    exp = (bits >> mant_bits) & exp_mask
    mant = bits & ((1 << mant_bits) - 1)
    if exp == exp_mask:
        return f"{sign}inf" if mant == 0 else f"{sign}nan:0x{mant:x}"
    fmt = "<f" if width == 32 else "<d"
    ifmt = "<I" if width == 32 else "<Q"
    return repr(struct.unpack(fmt, struct.pack(ifmt, bits))[0])


def _imm_text(field: opcodes.Imm, value) -> str:
    kind = field.kind
    if kind in ("i32", "i64"):
        return str(_signed(value, opcodes.BITS[kind]))
    if kind == "f32":
        return f"0x{value:08x}"
    if kind == "f64":
        return f"0x{value:016x}"
    if kind == "v128":
        return f"0x{value:032x}"
    if kind == "str":
        return json.dumps(value)
    if kind == "reftype":
        return str(value)
    if kind == "shuffle":
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _call_text(call: BlockCall) -> str:
    if not call.args:
        return repr(call.block)
    return f"{call.block!r}({', '.join(map(repr, call.args))})"


def print_instruction(ins: Instruction) -> str:
    info = ins.op
    parts = []
    if ins.results:
        typed = info.needs_env
        parts.append(", ".join(f"{r!r}: {r.type}" if typed else repr(r) for r in ins.results)
                     + " =")
    parts.append(info.name)
    if len(info.imm) == 1:
        parts.append(_imm_text(info.imm[0], ins.imm[0]))
    else:
        parts.extend(f"{f.name}={_imm_text(f, v)}" for f, v in zip(info.imm, ins.imm))
    operands = [repr(a) for a in ins.args]
    if ins.targets:
        calls = [_call_text(c) for c in ins.targets]
        if info.name == "br_table":
            calls = ["[" + ", ".join(calls[:-1]) + "]", calls[-1]]
        operands += calls
    if operands:
        parts.append(", ".join(operands))
    if ins.offset is not None:
        parts.append(f"@0x{ins.offset:x}")
    text = " ".join(parts)
    if info.name in ("f32.const", "f64.const"):
        text += f"  ; {_float_text(ins.imm[0], opcodes.BITS[info.name[:3]])}"
    return text


def _params_text(params) -> str:
    return ", ".join(f"{p!r}: {p.type}" for p in params)


def print_block_header(block: Block) -> str:
    text = repr(block)
    if block.params:
        text += f"({_params_text(block.params)})"
    if block.fuel:
        text += f" fuel={block.fuel}"
    if block.offset is not None:
        text += f" @0x{block.offset:x}"
    return text + ":"


def print_function(func: Function) -> str:
    head = f"function {_fname(func.name)}({_params_text(func.params if func.blocks else ())})"
    if func.sig.results:
        head += " -> " + ", ".join(map(str, func.sig.results))
    if func.index is not None:
        head += f" index={func.index}"
    lines = [head + " {"]
    for block in func.blocks:
        lines.append(print_block_header(block))
        lines.extend("    " + print_instruction(i) for i in block.instrs)
    lines.append("}")
    return "\n".join(lines) + "\n"


def print_module(module: IRModule) -> str:
    lines = []
    for i, ft in enumerate(module.types):
        lines.append(f"type {i} = ({', '.join(map(str, ft.params))}) -> "
                     f"({', '.join(map(str, ft.results))})")
    lines += [f"func {i} = type {t}" for i, t in enumerate(module.func_types)]
    lines += [f"global {i} = {'mut ' if mut else ''}{t}" for i, (t, mut) in
              enumerate(module.globals)]
    lines += [f"table {i} = {t}" for i, t in enumerate(module.tables)]
    if module.memories:
        lines.append(f"memories {module.memories}")
    if module.datas:
        lines.append(f"datas {module.datas}")
    lines += [f"elem {i} = {t}" for i, t in enumerate(module.elems)]
    text = "\n".join(lines) + ("\n" if lines else "")
    for func in module.functions:
        text += "\n" + print_function(func)
    return text


# -- parsing ------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    grammar = (Path(__file__).parent / "ir.lark").read_text()
    return lark.Lark(grammar, start=["module", "function_only"], parser="lalr",
                     propagate_positions=True, maybe_placeholders=False)


def _error(where, message: str) -> DecodeError:
    line = getattr(where, "line", None)
    col = getattr(where, "column", None)
    if line is None and hasattr(where, "meta"):
        line, col = where.meta.line, where.meta.column
    return DecodeError(f"line {line}:{col}: {message}")


_TERMINAL_NAMES = {
    "VALUE": "a value", "BLOCK": "a block label", "TYPE": "a type", "OPNAME": "an op name",
    "NUMBER": "a number", "STRING": "a string", "REFTYPE": "a reference type",
    "IMMKEY": "name=", "AT": "@offset", "FNAME": "%name", "_NL": "end of line",
}


@lru_cache(maxsize=1)
def _terminal_display() -> dict[str, str]:
    """Readable names for the grammar's terminals, for error messages."""
    out = {}
    for t in _parser().terminals:
        literal = t.pattern.value if isinstance(t.pattern, lark.lexer.PatternStr) else t.name
        out[t.name] = _TERMINAL_NAMES.get(t.name, literal)
    return out


def _parse_tree(text: str, start: str):
    try:
        return _parser().parse(text + "\n", start=start)
    except lark.exceptions.UnexpectedInput as e:
        expected = getattr(e, "expected", None) or getattr(e, "allowed", None) or ()
        token = getattr(e, "token", None)
        if token is None:  # the lexer found no token at all
            pos = e.pos_in_stream or 0
            got = repr(text[pos:pos + 1]) if pos < len(text) else "end of text"
        else:
            got = repr(str(token)) if str(token).strip() else "end of line"
        display = _terminal_display()
        names = sorted({display.get(t, t) for t in expected})
        hint = f" (expected one of: {', '.join(names[:10])})" if names else ""
        raise DecodeError(f"line {e.line}:{e.column}: unexpected {got}{hint}") from None
    except lark.exceptions.LarkError as e:
        raise DecodeError(f"cannot parse IR text: {e}") from None


def _number(tok, what="number") -> int:
    """An integer literal (decimal or hex); float syntax is an error here."""
    s = str(tok)
    low = s.lower().lstrip("+-")
    neg = s.startswith("-")
    if low.startswith("0x"):
        v = int(low, 16)
        return -v if neg else v
    if low.isdigit():
        v = int(low)
        return -v if neg else v
    raise _error(tok, f"expected an integer {what}, got {s}")


def _uint(tok, limit_bits=32, what="index") -> int:
    v = _number(tok, what)
    if not 0 <= v < (1 << limit_bits):
        raise _error(tok, f"{what} {tok} out of range")
    return v


def _float_bits(tok, width: int) -> int:
    s = str(tok)
    low = s.lower()
    sign = 1 if low.startswith("-") else 0
    body = low.lstrip("+-")
    exp_bits, mant_bits = (8, 23) if width == 32 else (11, 52)
    top = ((1 << exp_bits) - 1) << mant_bits
    if body.startswith("0x"):
        if sign:
            raise _error(tok, "a float bit pattern cannot be negative")
        v = int(body, 16)
        if v >> width:
            raise _error(tok, f"{s} does not fit in {width} bits")
        return v
    if body == "inf":
        return (sign << (width - 1)) | top
    if body.startswith("nan"):
        payload = int(body[6:], 16) if ":" in body else 1 << (mant_bits - 1)
        if not 0 < payload < (1 << mant_bits):
            raise _error(tok, f"bad NaN payload in {s}")
        return (sign << (width - 1)) | top | payload
    value = float(s)
    if width == 64:
        return struct.unpack("<Q", struct.pack("<d", value))[0]
    if math.isfinite(value) and abs(value) > 3.4028235677973366e38:
        raise _error(tok, f"{s} is out of f32 range")
    return struct.unpack("<I", struct.pack("<f", value))[0]


def _imm_value(field: opcodes.Imm, lit) -> object:
    node = lit.children[0]
    kind = field.kind
    if isinstance(node, lark.Tree):  # lanes
        if kind != "shuffle":
            raise _error(node, f"{field.name} is not a lane list")
        lanes = tuple(_uint(t, 8, "lane") for t in node.children)
        if len(lanes) != 16 or any(v >= 32 for v in lanes):
            raise _error(node, "a shuffle takes 16 lane indices below 32")
        return lanes
    kind_tok = node.type
    if kind == "shuffle":
        raise _error(node, "a shuffle takes a lane list [l0, ..., l15]")
    if kind == "str":
        if kind_tok != "STRING":
            raise _error(node, f"{field.name} must be a string")
        try:
            return json.loads(str(node))
        except ValueError:
            raise _error(node, f"bad string {node}") from None
    if kind == "reftype":
        if kind_tok != "REFTYPE":
            raise _error(node, f"{field.name} must be funcref or externref")
        return ValType.from_name(str(node))
    if kind_tok != "NUMBER":
        raise _error(node, f"{field.name} must be a number")
    if kind in ("f32", "f64"):
        return _float_bits(node, opcodes.BITS[kind])
    if kind in ("i32", "i64", "v128"):
        width = opcodes.BITS[kind]
        v = _number(node, "constant")
        lo = -(1 << (width - 1)) if kind != "v128" else 0
        if not lo <= v < (1 << width):
            raise _error(node, f"{node} does not fit in {kind}")
        return v & ((1 << width) - 1)
    if kind == "lane":
        v = _uint(node, 8, "lane")
        if v >= field.limit:
            raise _error(node, f"lane {v} out of range (< {field.limit})")
        return v
    return _uint(node, 64 if kind == "offset" else 32, field.name)


def _parse_imms(info: opcodes.OpInfo, imm_trees, where) -> tuple:
    values: dict[str, object] = {}
    position = 0
    for t in imm_trees:
        key, lit = (t.children if len(t.children) == 2 else (None, t.children[0]))
        if key is None:
            if position >= len(info.imm):
                raise _error(t, f"{info.name} takes {len(info.imm)} immediate(s)")
            field = info.imm[position]
            position += 1
        else:
            name = str(key)[:-1]
            field = next((f for f in info.imm if f.name == name), None)
            if field is None:
                raise _error(key, f"{info.name} has no immediate {name!r}")
        if field.name in values:
            raise _error(t, f"immediate {field.name!r} given twice")
        values[field.name] = _imm_value(field, lit)
    missing = [f.name for f in info.imm if f.name not in values]
    if missing:
        raise _error(where, f"{info.name} needs immediate(s) {', '.join(missing)}")
    return tuple(values[f.name] for f in info.imm)


def _type(tok) -> ValType:
    return ValType.from_name(str(tok))


def _attrs(attrs, allowed: set[str]):
    out: dict[str, int] = {}
    for a in attrs:
        if a.children[0].type == "AT":
            key, value = "@", _uint(lark.Token("NUMBER", str(a.children[0])[1:],
                                               line=a.children[0].line,
                                               column=a.children[0].column), 64, "offset")
        else:
            key, value = str(a.children[0])[:-1], _uint(a.children[1], 64, "attribute")
        if key not in allowed:
            raise _error(a, f"unknown attribute {key!r}")
        if key in out:
            raise _error(a, f"attribute {key!r} given twice")
        out[key] = value
    return out


class _FunctionReader:
    """Turns one `function` parse tree into a Function (two passes: definitions first,
    since a block may use values of blocks printed after it)."""

    def __init__(self, tree, env):
        self.env = env
        self.values: dict[int, Value] = {}
        self.blocks: dict[int, Block] = {}
        self.tree = tree

    def read(self) -> Function:
        tree = self.tree
        kids = tree.children
        name_tok = kids[0]
        name = str(name_tok)[1:]
        if name.startswith('"'):
            name = json.loads(name)
        params = [k for k in kids if isinstance(k, lark.Tree) and k.data == "param"]
        results = next((k for k in kids if isinstance(k, lark.Tree) and k.data == "results"),
                       None)
        attrs = _attrs([k for k in kids if isinstance(k, lark.Tree) and k.data == "attr"],
                       {"index"})
        block_trees = [k for k in kids if isinstance(k, lark.Tree) and k.data == "block"]
        sig = FuncType(tuple(_type(p.children[1]) for p in params),
                       tuple(_type(t) for t in results.children) if results else ())
        func = Function(name, sig, attrs.get("index"))
        self.func = func
        # pass 1: blocks, parameters, instruction results
        pending = []
        for bt in block_trees:
            label = bt.children[0]
            bid = int(str(label)[5:])
            if bid in self.blocks:
                raise _error(label, f"{label} defined twice")
            battrs = _attrs([k for k in bt.children[1:] if k.data == "attr"], {"fuel", "@"})
            block = func.new_block(battrs.get("fuel", 0), battrs.get("@"), id=bid)
            self.blocks[bid] = block
            for p in (k for k in bt.children[1:] if k.data == "param"):
                block.params.append(self._define(p.children[0], _type(p.children[1]), block))
            for it in (k for k in bt.children[1:] if k.data == "instr"):
                pending.append((block, it, self._define_results(it)))
        entry = func.blocks[0]
        header = [(int(str(p.children[0])[1:]), _type(p.children[1])) for p in params]
        if header != [(v.id, v.type) for v in entry.params]:
            raise _error(block_trees[0], "the entry block's parameters must repeat the "
                                         "function header's")
        self._infer_select_types(pending)
        # pass 2: operands, immediates, targets
        for block, it, ins in pending:
            self._fill(block, it, ins)
        return func

    def _define(self, tok, ty, defn, index=0) -> Value:
        vid = int(str(tok)[1:])
        if vid in self.values:
            raise _error(tok, f"{tok} defined twice")
        v = self.func.new_value(ty, defn, index, id=vid)
        self.values[vid] = v
        return v

    def _define_results(self, it) -> Instruction:
        kids = it.children
        defs = kids[0] if isinstance(kids[0], lark.Tree) and kids[0].data == "defs" else None
        op_tok = next(k for k in kids if isinstance(k, lark.Token) and k.type == "OPNAME")
        info = opcodes.OPS.get(str(op_tok))
        if info is None:
            raise _error(op_tok, f"unknown op {op_tok}")
        imm = _parse_imms(info, [k for k in kids if isinstance(k, lark.Tree) and k.data == "imm"],
                          op_tok)
        at = next((k for k in kids if isinstance(k, lark.Token) and k.type == "AT"), None)
        ins = Instruction(info, (), imm, offset=None if at is None else int(str(at)[1:], 0))
        result_toks = defs.children if defs is not None else []
        declared = [None if len(d.children) == 1 else _type(d.children[1]) for d in result_toks]
        if info.results is not None:
            expected = info.results
        elif info.name == "ref.null":
            expected = (imm[0],)
        elif info.name == "select":
            expected = (None,)  # the type of the first operand, found later
        else:
            expected = None
            if self.env is not None:
                try:
                    sig = opcodes.signature(info, imm, (), self.env)
                    expected = None if sig is None else sig[1]
                except ValidationError as e:
                    if None in declared:  # the types are needed; otherwise the verifier reports
                        raise _error(op_tok, e.message) from None
            if expected is None and any(t is None for t in declared):
                raise _error(op_tok, f"{info.name} results need explicit types (vN: type)")
        if expected is not None and len(expected) != len(declared):
            raise _error(op_tok, f"{info.name} has {len(expected)} result(s), "
                                 f"{len(declared)} given")
        types = [d if d is not None else e for d, e in zip(declared, expected or declared)]
        ins.results = tuple(self._define(d.children[0], t, ins, k)
                            for k, (d, t) in enumerate(zip(result_toks, types)))
        return ins

    def _infer_select_types(self, pending):
        todo = [ins for _, it, ins in pending for r in ins.results if r.type is None]
        trees = {id(ins): it for _, it, ins in pending}
        while todo:
            left = []
            for ins in todo:
                first = self._operand_tokens(trees[id(ins)])
                if not first:
                    raise _error(trees[id(ins)], "select needs operands")
                v = self._lookup(first[0])
                if v.type is None:
                    left.append(ins)
                else:
                    ins.results[0].type = v.type
            if len(left) == len(todo):
                raise _error(trees[id(left[0])], "cannot infer the type of this select; "
                                                 "write it as vN: type")
            todo = left

    @staticmethod
    def _operand_tokens(it):
        args = next((k for k in it.children if isinstance(k, lark.Tree) and k.data == "args"),
                    None)
        if args is None:
            return []
        return [a for a in args.children if isinstance(a, lark.Token)]

    def _lookup(self, tok) -> Value:
        v = self.values.get(int(str(tok)[1:]))
        if v is None:
            raise _error(tok, f"{tok} is not defined")
        return v

    def _call(self, tree) -> BlockCall:
        label = tree.children[0]
        block = self.blocks.get(int(str(label)[5:]))
        if block is None:
            raise _error(label, f"{label} is not defined")
        return BlockCall(block, [self._lookup(t) for t in tree.children[1:]])

    def _fill(self, block: Block, it, ins: Instruction) -> None:
        args = next((k for k in it.children if isinstance(k, lark.Tree) and k.data == "args"),
                    None)
        items = args.children if args is not None else []
        values, calls, tables = [], [], []
        for item in items:
            if isinstance(item, lark.Token):
                if calls or tables:
                    raise _error(item, "values must come before branch targets")
                values.append(self._lookup(item))
            elif item.data == "call":
                calls.append(self._call(item))
            else:
                if calls or tables:
                    raise _error(item, "a br_table list must come before the default target")
                tables.append([self._call(c) for c in item.children])
        name = ins.op.name
        where = args if args is not None else it
        if name == "br_table":
            if len(tables) != 1 or len(calls) != 1:
                raise _error(where, "br_table takes an index, [targets...], and a default")
            ins.targets = tables[0] + calls
        else:
            if tables:
                raise _error(where, f"{name} takes no target list")
            count = opcodes.TARGET_COUNT.get(name, 0)
            if len(calls) != count:
                raise _error(where, f"{name} takes {count} branch target(s)")
            ins.targets = calls
        ins.args = values
        ins.block = block
        block.instrs.append(ins)


def parse_function(text: str, env=None) -> Function:
    """Parse one function. With `env` (an IRModule), calls, globals and tables may omit
    their result types."""
    tree = _parse_tree(text, "function_only")
    return _FunctionReader(tree.children[0], env).read()


def parse_module(text: str) -> IRModule:
    tree = _parse_tree(text, "module")
    module = IRModule()
    lists = {"type_decl": module.types, "func_decl": module.func_types,
             "global_decl": module.globals, "table_decl": module.tables,
             "elem_decl": module.elems}
    functions = []
    for item in tree.children:
        kind = item.data
        if kind == "function":
            functions.append(item)
            continue
        kids = item.children
        if kind in ("memories_decl", "datas_decl"):
            setattr(module, kind.split("_")[0], _uint(kids[0], 32, "count"))
            continue
        index = _uint(kids[0])
        target = lists[kind]
        if index != len(target):
            raise _error(kids[0], f"expected {kind.split('_')[0]} {len(target)}, got {index}")
        if kind == "type_decl":
            params, results = ([_type(t) for t in k.children] for k in kids[1:])
            target.append(FuncType(tuple(params), tuple(results)))
        elif kind == "func_decl":
            type_index = _uint(kids[1])
            if type_index >= len(module.types):
                raise _error(kids[1], f"type {type_index} is not declared (yet)")
            target.append(type_index)
        elif kind == "global_decl":
            target.append((_type(kids[-1]), len(kids) == 3))
        else:
            target.append(_type(kids[1]))
    module.functions = [_FunctionReader(f, module).read() for f in functions]
    return module
