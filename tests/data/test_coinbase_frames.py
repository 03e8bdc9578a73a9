"""JSONL reader of raw Advanced Trade frames."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from fastmm.data.coinbase_frames import RawFrame, parse_frame_line, read_frames, write_frames
from fastmm.units import DataError


def test_roundtrip_plain_and_gzip(tmp_path: Path) -> None:
    frames = [RawFrame(1, '{"channel":"heartbeats"}'), RawFrame(2, 'text with "quotes" and \\ \u00e9')]
    p = tmp_path / "f.jsonl"
    assert write_frames(p, frames) == 2
    assert list(read_frames(p)) == frames
    g = tmp_path / "f.jsonl.gz"
    g.write_bytes(gzip.compress(p.read_bytes() + b"\n\n"))
    assert list(read_frames(g)) == frames


@pytest.mark.parametrize("line", [b"{", b"[]", b'{"t_ns":"1","frame":"x"}', b'{"t_ns":-1,"frame":"x"}',
                                  b'{"t_ns":true,"frame":"x"}', b'{"t_ns":1,"frame":5}', b'{"t_ns":1}'])
def test_bad_lines(line: bytes) -> None:
    with pytest.raises(DataError):
        parse_frame_line(line)


def test_bad_line_names_its_number(tmp_path: Path) -> None:
    p = tmp_path / "f.jsonl"
    p.write_text('{"t_ns":1,"frame":"a"}\nnot json\n')
    it = read_frames(p)
    assert next(it).text == "a"
    with pytest.raises(DataError, match=r"f\.jsonl:2"):
        next(it)
    with pytest.raises(DataError, match="not found"):
        list(read_frames(tmp_path / "missing.jsonl"))

