"""Holding /dev/cpu_dma_latency: a command asked to hold it says so when it cannot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fastmm.shm import wait


def test_cannot_hold_says_so_once_and_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(wait, "CPU_DMA_LATENCY", str(tmp_path / "no-such-device"))
    assert wait.hold_cpu_dma_latency_or_say("bench x") is None
    err = capsys.readouterr().err
    assert err == f"bench x: {tmp_path / 'no-such-device'} not writable; running with the host's idle states\n"


def test_holding_writes_the_wanted_latency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    dev = tmp_path / "cpu_dma_latency"     # a plain file stands in for the device: the same write
    dev.write_bytes(b"")
    monkeypatch.setattr(wait, "CPU_DMA_LATENCY", str(dev))
    fd = wait.hold_cpu_dma_latency_or_say("bench x", 7)
    try:
        assert fd is not None and dev.read_bytes() == (7).to_bytes(4, "little")
    finally:
        if fd is not None:
            os.close(fd)
    assert capsys.readouterr().err == ""
