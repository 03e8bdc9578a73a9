"""The TrueX FIX simulator driven by a real FIX engine (QuickFIX with TrueX's dictionaries, validating
everything the simulator sends), and by bad input."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fastmm.config import InstrumentConfig
from fastmm.instrument import Instrument
from fastmm.sim.background import SimThread
from fastmm.sim.truex import TruexSimSettings
from fastmm.sim.truex_matching import ExchangeRules
from fastmm.sim.truex_server import TruexSimServer

HERE = Path(__file__).resolve().parent
DICTS = HERE.parents[2] / "shared" / "venues" / "truex"
KEY, SECRET, CLIENT = "00000000-0000-0000-0000-000000000000", "test-secret", "CLIENT1"
INSTRUMENT = Instrument.from_config(InstrumentConfig())


class Initiator:
    def __init__(self, tmp: Path, oe_port: int, md_port: int, secret: str = SECRET) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "qf_initiator.py"), "--dir", str(tmp), "--dicts", str(DICTS),
             "--key-id", KEY, "--secret", secret, "--oe-port", str(oe_port), "--md-port", str(md_port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait(lambda e: e["ev"] == "ready")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.events.append(json.loads(line))

    def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                for e in self.events:
                    if pred(e):
                        return e
            time.sleep(0.01)
        raise AssertionError(f"no matching event; last: {self.events[-6:]}")

    def all(self, pred: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if pred(e)]

    def send(self, s: str, mt: str, fields: list[tuple[int, str]], groups: list[dict] | None = None) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": "send", "s": s, "type": mt, "fields": fields,
                                          "groups": groups or []}) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write('{"cmd": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


def tag(e: dict[str, Any], t: int) -> str | None:
    for f in e.get("raw", "").split("|"):
        k, _, v = f.partition("=")
        if k == str(t):
            return v
    return None


def is_in(mt: str, s: str = "oe") -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["ev"] == "in" and e.get("s") == s and tag(e, 35) == mt


@pytest.fixture
def sim() -> Iterator[tuple[TruexSimServer, int, int]]:
    st = SimThread()
    settings = TruexSimSettings(api_key_id=KEY, api_secret=SECRET, rules=ExchangeRules(client_id=CLIENT),
                                speed=0, synthetic_levels=2, taker_probability=0.0)
    try:
        server, _ = st.start(lambda: _Wrapped(TruexSimServer.from_capture(INSTRUMENT, settings, max_lines=3000,
                                                                          heartbeat_s=5)))
        yield server.inner, server.ports[0], server.ports[1]
    finally:
        st.close()


class _Wrapped:
    """Adapts TruexSimServer.start (two ports) to SimThread.start (one)."""

    def __init__(self, inner: TruexSimServer) -> None:
        self.inner = inner
        self.ports = (0, 0)

    async def start(self, host: str, port: int) -> int:
        self.ports = await self.inner.start(host, 0, 0)
        return self.ports[0]

    async def stop(self) -> None:
        await self.inner.stop()


@pytest.fixture
def initiator(tmp_path: Path) -> Iterator[Callable[..., Initiator]]:
    made: list[Initiator] = []

    def start(oe: int, md: int, **kw: Any) -> Initiator:
        i = Initiator(tmp_path / f"qf{len(made)}", oe, md, **kw)
        made.append(i)
        return i

    yield start
    for i in made:
        i.close()


def parties() -> list[dict]:
    return [{"count": 453, "delim": 448, "fields": [[448, CLIENT], [447, "D"], [452, "3"]]}]


def test_quickfix_initiator_trades_on_the_simulator_without_a_single_reject(sim, initiator) -> None:
    server, oe, md = sim
    qf = initiator(oe, md)
    qf.wait(lambda e: e["ev"] == "logon" and e["s"] == "oe")
    qf.wait(lambda e: e["ev"] == "logon" and e["s"] == "md")
    deadline = time.monotonic() + 10
    while server.exchange.engine.reference is None and time.monotonic() < deadline:
        time.sleep(0.05)
    ref = server.exchange.engine.reference
    assert ref is not None
    bid_px = INSTRUMENT.price_text(ref - 100)
    qf.send("md", "V", [[262, "md1"], [263, "1"], [264, "0"]],
            [{"count": 267, "delim": 269, "fields": [[269, "0"]]}, {"count": 267, "delim": 269, "fields": [[269, "1"]]},
             {"count": 146, "delim": 55, "fields": [[55, "BTC-PYUSD"], [167, "CSPOT"]]}])
    snap = qf.wait(is_in("W", "md"))
    assert tag(snap, 262) == "md1"
    qf.send("oe", "D", [[11, "b1"], [55, "BTC-PYUSD"], [167, "CSPOT"], [54, "1"], [40, "2"], [38, "0.0100"],
                        [44, bid_px], [59, "1"], [60, "20250101-00:00:00.000"]], parties())
    new = qf.wait(lambda e: is_in("8")(e) and tag(e, 11) == "b1")
    assert tag(new, 150) == "0" and tag(new, 39) == "0"
    qf.wait(lambda e: is_in("X", "md")(e) and bid_px in e["raw"])
    qf.send("oe", "G", [[11, "b2"], [41, "b1"], [40, "2"], [38, "0.0200"], [44, bid_px],
                        [60, "20250101-00:00:00.000"]], parties())
    rep = qf.wait(lambda e: is_in("8")(e) and tag(e, 11) == "b2")
    assert tag(rep, 150) == "5" and tag(rep, 41) == "b1"
    qf.send("oe", "F", [[11, "b3"], [41, "b2"], [60, "20250101-00:00:00.000"]], parties())
    cxl = qf.wait(lambda e: is_in("8")(e) and tag(e, 11) == "b3")
    assert tag(cxl, 150) == "4" and tag(cxl, 39) == "4"
    # A sell that crosses the synthetic bid: a fill, ExecType F with liquidity and fee.
    qf.send("oe", "D", [[11, "s1"], [55, "BTC-PYUSD"], [167, "CSPOT"], [54, "2"], [40, "2"], [38, "0.0010"],
                        [44, INSTRUMENT.price_text(ref - 1000)], [59, "3"], [60, "20250101-00:00:00.000"]], parties())
    fill = qf.wait(lambda e: is_in("8")(e) and tag(e, 11) == "s1" and tag(e, 150) == "F")
    assert tag(fill, 851) == "2" and tag(fill, 139) == "4" and tag(fill, 137) is not None
    # Unknown order, off-tick replace, wrong client id: TrueX's rejects.
    qf.send("oe", "F", [[11, "c9"], [41, "nope"], [60, "20250101-00:00:00.000"]], parties())
    rej = qf.wait(lambda e: is_in("9")(e) and tag(e, 11) == "c9")
    assert tag(rej, 102) == "1"
    bad_party = [{"count": 453, "delim": 448, "fields": [[448, "SOMEONE"], [447, "D"], [452, "3"]]}]
    qf.send("oe", "D", [[11, "x1"], [55, "BTC-PYUSD"], [167, "CSPOT"], [54, "1"], [40, "2"], [38, "0.0100"],
                        [44, bid_px], [59, "1"], [60, "20250101-00:00:00.000"]], bad_party)
    inv = qf.wait(lambda e: is_in("8")(e) and tag(e, 11) == "x1")
    assert tag(inv, 150) == "8" and tag(inv, 37) == "NONE" and tag(inv, 58) == "Invalid client"
    time.sleep(0.3)
    rejects_sent_by_quickfix = qf.all(lambda e: e["ev"] == "out" and tag(e, 35) in ("3", "j"))
    assert rejects_sent_by_quickfix == [], "QuickFIX found a message that breaks TrueX's dictionaries"


def test_wrong_password_is_refused(sim, initiator) -> None:
    server, oe, md = sim
    qf = initiator(oe, md, secret="wrong")
    rej = qf.wait(lambda e: e["ev"] == "in" and tag(e, 35) == "3")
    assert tag(rej, 373) == "8"
    assert server.bad_logons >= 1


@pytest.mark.parametrize("junk", [b"garbage\x01" * 100, b"8=FIXT.1.1\x019=1000000000\x0135=D\x01",
                                  b"8=FIXT.1.1\x019=5\x0135=A\x0110=000\x01", bytes(range(256)) * 50])
def test_bad_bytes_never_crash_the_simulator(sim, junk: bytes) -> None:
    _server, oe, _md = sim
    with socket.create_connection(("127.0.0.1", oe), timeout=5) as s:
        s.sendall(junk)
        s.settimeout(3)
        try:
            while s.recv(4096):
                pass
        except (TimeoutError, ConnectionResetError):
            pass
    # still serving: a new connection is accepted
    with socket.create_connection(("127.0.0.1", oe), timeout=5):
        pass
