"""Disassembly of every op and the generated ISA reference page."""

from pathlib import Path

from isa_testlib import extremes

from deadeye.interp.isa import OP_LIST, ConstPool, disassemble, encode
from deadeye.interp.isa import docs
from deadeye.ir import numerics

ROOT = Path(__file__).resolve().parents[1]


def test_every_op_disassembles():
    for pick in (0, -1):
        code = b""
        starts = []
        for row in OP_LIST:
            starts.append(len(code))
            code += encode(row, *[extremes(o)[pick] for o in row.operands])
        lines = disassemble(code)
        assert len(lines) == len(OP_LIST)
        for line, row, pc in zip(lines, OP_LIST, starts):
            head, _, rest = line.partition(": ")
            assert int(head, 16) == pc
            assert rest.split()[0] == row.name
            n_regs = sum(o.kind.is_reg and o.kind.width is not None for o in row.operands)
            assert sum(tok.strip("@,;[]").startswith(("r", "v")) and tok.strip("@,;[]")[1:].isdigit()
                       for tok in rest.split()[1:]) >= n_regs


def test_disassembly_shows_registers_targets_and_immediates():
    pool = ConstPool()
    code = (encode("i32.add", 3, 1, 2)                       # 0x00, 7 bytes
            + encode("jump", -7)                             # 0x07
            + encode("br_table", 4, (5, -12, 0))            # 0x0c
            + encode("mov128", 6, 8)
            + encode("const64", 1, 1 << 40, pool=pool)
            + encode("const64", 1, (-2) & ((1 << 64) - 1))
            + encode("constf64", 2, numerics.float_to_f64(1.5))
            + encode("call", 9, 12)
            + encode("return", (1, 0))
            + encode("trap", 1))
    lines = disassemble(code, pool=pool)
    assert lines[0] == "0x0000: i32.add                r3, r1, r2"
    assert lines[1].endswith("jump                   -> 0x0")
    assert "r4, [0x11, 0x0, default 0xc]" in lines[2]
    assert lines[3].endswith("v6, v8")
    assert lines[4].endswith(f"r1, pool[0]={1 << 40:#x}")
    assert lines[5].endswith("r1, -2")
    assert "1.5 (0x3ff8000000000000)" in lines[6]
    assert lines[7].endswith("func[9], @r12")
    assert lines[8].endswith("[r1, r0]")
    assert lines[9].endswith(f"1 ({numerics.DIV_BY_ZERO})")
    # a range of the code
    assert disassemble(code, 7, 12) == [lines[1]]


def test_generated_docs_are_current():
    text = (ROOT / "docs" / "isa.md").read_text()
    assert text == docs.render(), "docs/isa.md is stale: run python -m deadeye.interp.isa.docs"


def test_docs_cover_every_op_and_the_conventions():
    text = docs.render()
    for row in OP_LIST:
        assert f"| `{row.name}` |" in text
    for heading in ("## Register model", "## Calling convention", "## Encoding",
                    "## Operand kinds", "## Trap codes"):
        assert heading in text


def test_docs_check_mode(tmp_path):
    stale = tmp_path / "isa.md"
    stale.write_text("old\n")
    assert docs.main(["--check", str(stale)]) == 1
    assert docs.main([str(stale)]) == 0
    assert docs.main(["--check", str(stale)]) == 0
    assert docs.main([str(tmp_path / "missing" / "isa.md")]) == 2
