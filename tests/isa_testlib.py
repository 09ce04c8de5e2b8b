"""Shared operand generators for the ISA tests (hypothesis strategies and extremes)."""

from hypothesis import strategies as st

from deadeye.interp.isa.kinds import MASK64

SX32_EDGES = (0, (1 << 31) - 1, MASK64 + 1 - (1 << 31), MASK64)


def extremes(operand) -> list:
    """Boundary values of one operand, smallest first."""
    k = operand.kind
    if operand.limit:
        return [0, operand.limit - 1]
    if k.name == "shuffle":
        return [(0,) * 16, (31,) * 16]
    if k.name == "brtable":
        return [(-(1 << 31),), ((1 << 31) - 1,) * 3]
    if k.name == "slots":
        return [(), (0xFFFF,) * 3]
    if k.name == "sx32":
        return list(SX32_EDGES)
    return [k.lo, k.hi]


def operand_strategy(operand):
    k = operand.kind
    if operand.limit:
        return st.integers(0, operand.limit - 1)
    if k.name == "shuffle":
        return st.tuples(*[st.integers(0, 31)] * 16)
    if k.name == "brtable":
        return st.lists(st.integers(-(1 << 31), (1 << 31) - 1), min_size=1, max_size=5).map(tuple)
    if k.name == "slots":
        return st.lists(st.integers(0, 0xFFFF), max_size=5).map(tuple)
    if k.name == "sx32":
        return st.one_of(st.integers(0, (1 << 31) - 1),
                         st.integers(MASK64 + 1 - (1 << 31), MASK64), st.sampled_from(SX32_EDGES))
    return st.one_of(st.integers(k.lo, k.hi), st.sampled_from([k.lo, k.hi]))


def operands_strategy(row):
    return st.tuples(*[operand_strategy(o) for o in row.operands])
