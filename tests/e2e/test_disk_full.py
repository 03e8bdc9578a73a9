"""A full disk under the running engine (issue 16, item 2): the instance's state folder on a small tmpfs,
filled to the last byte while the engine quotes against the simulators with every quote taken.

Expected: every fill the venue reports still reaches the position; the quoter trips the kill switch,
cancels every quote (no journal write needed) and raises the journal alert; the stop that follows is
quick; after space is freed and the engine restarted on the same venue, TrueX resends what was not
journalled, and the journal then holds every venue fill exactly once (by ExecID).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastmm.config import load_config
from fastmm.journal import read_journal
from fastmm.monitor.status import read_status
from fastmm.procs import lifecycle as lc
from fastmm.procs.plan import PROCESSES, default_children
from fastmm.procs.restart import RestartPolicy
from fastmm.procs.supervisor import Supervisor
from fastmm.shm import list_segments
from fastmm.shm.records import STATE_JOURNAL_FAILED


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (root only: the test machines run as root; a tmpfs is the real full disk)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mnt)], check=True,
                   timeout=10)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=10)


def fill_up(mnt: Path) -> Path:
    """Take every free byte of the file system with one file; returns it (delete it to free space)."""
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 16, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    finally:
        os.close(fd)
    return filler


def take_page_slack(path: Path, page: int = 4096) -> None:
    """The journal's last page has room a full file system still lets it use: fill it with one note
    record (its writer is paused), so the writer's next record needs a page the disk does not have."""
    slack = (-path.stat().st_size) % page
    if slack < 64:
        return              # no record of the quoter's is that short
    last = list(read_journal(path))[-1]["seq"]
    head = b'{"seq":%d,"t_ns":0,"kind":"note","detail":"test: the page slack' % last
    line = head + b"." * (slack - len(head) - 3) + b'"}\n'
    assert len(line) == slack
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        assert os.write(fd, line) == slack
    finally:
        os.close(fd)


def journal_fills(path: Path) -> list[str]:
    return [r["exec_id"] for r in read_journal(path) if r["kind"] == "fill"]


def test_full_disk_books_every_fill_cancels_alerts_and_recovers(engine, small_disk: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    e = engine({"FASTMM_INSTANCE__STATE_DIR": str(small_disk), "FASTMM_SIM__SPEED": "3",
                "FASTMM_PROCESSES__HEARTBEAT_TIMEOUT_MS": "15000"})
    e.run_until(lambda: e.sup.lifecycle.phase == lc.Phase.QUOTING, 30, "QUOTING")
    e.run_until(lambda: len(e.sim_fills()) >= 2, 60, "first fills")
    jpath = e.cfg.state_path / e.cfg.journal.file
    # The quoter paused while the disk fills and the venue fills its quotes: those fills reach it only
    # once the journal cannot write (so some fills are certainly not journalled).
    quoter = e.sup.children["quoter"].proc
    assert quoter is not None
    before = len(e.sim_fills())
    os.kill(quoter.pid, signal.SIGSTOP)
    try:
        filler = fill_up(small_disk)
        take_page_slack(jpath)
        e.run_until(lambda: len(e.sim_fills()) > before, 10, "venue fills while the quoter is paused")
    finally:
        os.kill(quoter.pid, signal.SIGCONT)
    t_full = time.monotonic()
    quoter_health = e.sup.channels["health.quoter"]

    def alerted() -> bool:
        return quoter_health.read() > 0 and bool(int(quoter_health.rx[0]["state"]) & STATE_JOURNAL_FAILED)

    # the disk is full: the next journal write fails (the quoter journals a mark every second)
    e.run_until(alerted, 20, "the journal alert")
    status = read_status(e.cfg.instance.name)
    assert status["processes"]["quoter"]["journal_failed"] and status["processes"]["quoter"]["risk_tripped"]
    # the kill switch makes the supervisor stop the engine: every quote cancelled, quickly
    e.run_until(lambda: e.sup.lifecycle.phase == lc.Phase.STOPPED, 20, "STOPPED")
    assert time.monotonic() - t_full < 20
    assert e.sim_live() == set(), "quotes left live on the venue after the stop"
    venue_fills = {f.exec_id for f in e.sim_fills()}
    pos = e.position()
    signed = sum((1 if f.side == "1" else -1) * f.last_qty for f in e.sim_fills())
    journal = list(read_journal(jpath))
    hedged = sum((1 if h["side"] == "BUY" else -1) * h["qty_lots"]
                 for h in {h["exec_id"]: h for h in journal
                           if h["kind"] == "hedge_fill" and h.get("source") == "quoter"}.values())
    # every fill the venue reported reached the position, journalled or not
    assert pos["truex_fills"] == len(venue_fills)
    assert pos["position_lots"] == signed + hedged
    e.sup.close()
    assert list_segments(e.cfg.instance.name) == []
    missing = venue_fills - set(journal_fills(jpath))
    assert missing, "every fill was journalled: the test did not reach the full-disk path"

    # free space, restart on the same venue: what the journal missed is resent and booked once
    filler.unlink()
    for k, v in {"FASTMM_SIM__SPEED": "3"}.items():
        monkeypatch.setenv(k, v)
    cfg = load_config(None, os.environ)
    assert cfg.state_path == e.cfg.state_path
    sup = Supervisor(cfg, default_children(cfg, None, PROCESSES),
                     restart=RestartPolicy(first_delay_ns=100_000_000))
    try:
        sup.start()
        deadline = time.monotonic() + 60
        want = {f.exec_id for f in e.sim_fills()}
        ids: list[str] = []
        while time.monotonic() < deadline:
            sup.step()
            time.sleep(0.005)
            with contextlib.suppress(Exception):
                ids = journal_fills(jpath)
            want = {f.exec_id for f in e.sim_fills()}
            if set(ids) == want and sup.lifecycle.phase >= lc.Phase.OE_LOGGED_ON:
                break
        assert len(ids) == len(set(ids)), "a fill journalled twice"
        assert set(ids) == want, f"journal fills {len(ids)}, venue fills {len(want)}"
        health = sup.channels["health.quoter"]
        assert health.read() > 0 and not int(health.rx[0]["state"]) & STATE_JOURNAL_FAILED
    finally:
        if sup.channels and sup.lifecycle.phase != lc.Phase.STOPPED:
            sup.request_stop("test teardown")
            deadline = time.monotonic() + 30
            while sup.lifecycle.phase != lc.Phase.STOPPED and time.monotonic() < deadline:
                sup.step()
                time.sleep(0.005)
        sup.close()
    assert list_segments(cfg.instance.name) == []
