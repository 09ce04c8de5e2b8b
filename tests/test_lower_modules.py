"""Every function of every Sightglass module and of every module in the spec suite lowers,
and its bytecode decodes op by op; the lowering statistics meet their targets."""

import glob
import os

import pytest

from deadeye.frontend.lift import ModuleLifter
from deadeye.interp.isa.encoding import decode_all
from deadeye.interp.isa.program import CompiledCode
from deadeye.lower.compile import LowerStats, compile_function
from deadeye.rule_sets import corpus_modules

from lower_testlib import lower_module

HERE = os.path.dirname(__file__)
SIGHTGLASS = sorted(glob.glob(os.path.join(HERE, "sightglass", "*.wasm")))


def test_sightglass_modules_are_present():
    assert len(SIGHTGLASS) >= 10


@pytest.mark.parametrize("path", SIGHTGLASS, ids=os.path.basename)
def test_sightglass_module_lowers(path):
    stats = LowerStats()
    with open(path, "rb") as f:
        module, code = lower_module(f.read(), stats)
    assert stats.functions == len(module.func_types)
    # Every function's code decodes exactly up to its end, and the functions tile `code`.
    at = 0
    for i in range(len(module.func_types)):
        assert code.entry[i] == at
        last = at
        for pc, _, _ in decode_all(code.code, code.entry[i], code.end[i]):
            last = pc
        assert last < code.end[i]
        at = code.end[i]
        assert code.frame_size[i] >= 1
    assert at == len(code.code)
    # Superinstructions and fall-through layout: fewer bytecode ops than wasm instructions.
    assert stats.bytecode_ops < stats.wasm_instructions
    # The srcmap is sorted and within the code.
    assert list(code.srcmap_pc) == sorted(code.srcmap_pc)
    assert all(pc < len(code.code) for pc in code.srcmap_pc)


def _spec_shard(shard, nshards=4):
    files = sorted(glob.glob(os.path.join(HERE, "spec", "**", "*.wast"), recursive=True))
    return files[shard::nshards]


@pytest.mark.parametrize("shard", range(4))
def test_spec_suite_modules_lower(shard):
    errors = []
    n = 0
    for label, module in corpus_modules(_spec_shard(shard), errors.append):
        lifter = ModuleLifter(module)
        code = CompiledCode(len(module.func_types))
        for i in range(len(module.func_types)):
            compile_function(lifter.function(i), lifter.env, code, i)
            list(decode_all(code.code, code.entry[i], code.end[i]))
        n += 1
    assert not errors
    assert n > 100
