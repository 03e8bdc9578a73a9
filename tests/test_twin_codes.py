"""The codes the compiled twins cimport (``fastmm/*/_codes.pxd``) equal the pure twins' Python constants.

Each ``.pxd`` is read as text, so the check runs with or without a build (and under ``FASTMM_PURE=1``):
changing a value on one side only fails here instead of making the two twins disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

import fastmm
from fastmm.core import reconcile
from fastmm.core.types import Side
from fastmm.fix import codec as fix_codec

ROOT = Path(fastmm.__file__).parent
_ENUM_VALUE = re.compile(r"^\s+([A-Z][A-Z0-9_]*)\s*=\s*(-?\d+)\s*(?:#.*)?$")


def pxd_codes(path: Path) -> dict[str, int]:
    """Name -> value of every member of the ``cdef enum:`` blocks of one .pxd."""
    out: dict[str, int] = {}
    in_enum = False
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            in_enum = line.strip() == "cdef enum:"
            assert in_enum, f"{path.name}: only `cdef enum:` blocks are expected, got {line!r}"
            continue
        m = _ENUM_VALUE.match(line)
        assert m and in_enum, f"{path.name}: unreadable line {line!r}"
        assert m[1] not in out, f"{path.name}: {m[1]} twice"
        out[m[1]] = int(m[2])
    return out


def test_core_codes_are_reconciles_intent_kinds_and_the_sides() -> None:
    assert pxd_codes(ROOT / "core" / "_codes.pxd") == {
        "INTENT_CANCEL": reconcile.CANCEL, "INTENT_MOVE": reconcile.MOVE, "INTENT_NEW": reconcile.NEW,
        "SIDE_BUY": int(Side.BUY), "SIDE_SELL": int(Side.SELL)}
    assert {int(s) for s in Side} == {1, 2}, "a new Side member: add it to fastmm/core/_codes.pxd"


def test_fix_codes_are_the_codecs_reject_reasons_and_frame_limits() -> None:
    codes = pxd_codes(ROOT / "fix" / "_codes.pxd")
    rej = {k: v for k, v in vars(fix_codec).items() if k.startswith("REJ_")}
    assert {k: v for k, v in codes.items() if k.startswith("REJ_")} == rej and rej
    assert {k: v for k, v in codes.items() if not k.startswith("REJ_")} == {
        "MAX_BEGIN": fix_codec._MAX_BEGIN, "MAX_LEN_DIGITS": fix_codec._MAX_LEN_DIGITS,
        "MAX_TAG_DIGITS": fix_codec._MAX_TAG_DIGITS, "SYNC_LEN": len(fix_codec._SYNC),
        "TAG_CACHE": max(fix_codec._TAG_CACHE.values()) + 1}


def test_every_codes_pxd_is_checked_here() -> None:
    assert sorted(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.pxd")) == [
        "core/_codes.pxd", "fix/_codes.pxd", "fix/_digits.pxd"]   # _digits: shared helpers, no codes


def test_no_twin_writes_a_shared_code_again() -> None:
    """A .pyx names a shared code only by cimporting it: no ``cdef int REJ_... =`` copies."""
    names = set(pxd_codes(ROOT / "core" / "_codes.pxd")) | set(pxd_codes(ROOT / "fix" / "_codes.pxd"))
    for pyx in ROOT.rglob("*.pyx"):
        for line in pyx.read_text().splitlines():
            m = re.match(r"\s*cdef\s+[\w ]+?\s+([A-Z][A-Z0-9_]*)\s*=", line)
            assert not (m and m[1] in names), f"{pyx.name}: {line.strip()!r} copies a code of a _codes.pxd"
