"""Hostile bytecode never crashes the process: random bytes and random well-encoded op
sequences either are rejected (DecodeError/ValidationError), trap, or run to completion."""

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from deadeye.interp.isa.encoding import decode_all, encode
from deadeye.interp.isa.table import OP_LIST
from deadeye.ir.errors import WasmError
from deadeye.ir.types import FuncType, ValType

from test_jit_programs import prog

FRAME = 6
_SIMPLE = [op for op in OP_LIST if not {o.kind.name for o in op.operands}
           & {"brtable", "slots", "func", "type", "table", "global", "data", "elem", "mem"}]


def _no_backward_branch(body: bytes) -> bool:
    try:
        for pc, row, vals in decode_all(body):
            for o, v in zip(row.operands, vals):
                if o.kind.name == "off" and v <= 0:
                    return False
    except WasmError:
        return True  # rejected before it runs
    return True


def _run(body: bytes, mode: str):
    p = prog(mode, [("f", FuncType((ValType.I64,) * FRAME, ()), [], FRAME)], memories=1)
    p.code = p.module.code  # replace the empty body with the hostile one
    p.code.code = bytearray()
    p.code.add_function(0, body, FRAME)
    try:
        p.call("f", *range(FRAME))
    except WasmError:
        pass


@pytest.mark.parametrize("mode", ["direct", "indirect", "loop"])
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(min_size=1, max_size=40))
def test_random_bytes(mode, body):
    assume(_no_backward_branch(body))
    _run(body, mode)


def _op_strategy():
    def operands(op):
        vals = []
        for o in op.operands:
            k = o.kind
            if k.name == "shuffle":
                vals.append(st.tuples(*[st.integers(0, 31)] * 16))
            elif k.name == "v128":
                vals.append(st.integers(0, (1 << 128) - 1))
            elif k.name in ("lane", "trap"):
                vals.append(st.integers(0, o.limit - 1))
            elif k.name == "sx32":
                vals.append(st.integers(0, (1 << 31) - 1))
            elif k.name == "off":
                vals.append(st.integers(1, 64))
            elif k.is_reg:
                vals.append(st.integers(0, FRAME + 2))  # sometimes outside the frame
            else:
                vals.append(st.integers(k.lo, min(k.hi, 1 << 20)))
        return st.tuples(st.just(op), *vals)
    return st.sampled_from(_SIMPLE).flatmap(operands)


@pytest.mark.parametrize("mode", ["direct", "indirect"])
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(_op_strategy(), min_size=1, max_size=8))
def test_random_op_sequences(mode, ops):
    body = bytearray()
    for op, *vals in ops:
        body += encode(op, *vals)
    body += encode("return", ())
    _run(bytes(body), mode)
