"""Conformance against a real FIX engine: a QuickFIX acceptor validating with TrueX's own dictionaries.

The acceptor (``qf_peer.py``, its own process) checks the TrueX logon HMAC in fromAdmin, rejects
anything its dictionaries do not allow, answers orders with ExecutionReports and a MarketDataRequest
with a snapshot. Scenarios are driven from its side: skipped sequence numbers, PossDup duplicates, a
disconnect mid-session, a Logon answer with a too-high MsgSeqNum, a refused logon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from conftest import CLIENT_ID, KEY_ID, SECRET, QfPeer, field, msg_type

from fastmm.backoff import Backoff
from fastmm.config import InstrumentConfig
from fastmm.event_loop import run
from fastmm.fix._state import State
from fastmm.fix.session import (
    AppMessage,
    DisconnectWanted,
    Event,
    FixSession,
    GapDetected,
    GapFilled,
    SessionRejectReceived,
    SessionRejectSent,
    SessionResetByLogon,
    SessionSettings,
)
from fastmm.fix.store import MemorySeqStore
from fastmm.fix.transport import FixInitiator
from fastmm.instrument import Instrument
from fastmm.venues.truex.auth import LogonCredentials
from fastmm.venues.truex.codec import BUY, SELL, ExecutionReport, MarketDataSnapshot, TruexCodec

CODEC = TruexCodec(Instrument.from_config(InstrumentConfig()), CLIENT_ID)
OE = "oe:TRUEX_SIM_OE:FASTMM_OE"
MD = "md:TRUEX_SIM_MD:FASTMM_MD"
OE2 = "oe2:TRUEX_SIM_OE2:FASTMM_OE2:noreset"


class Side:
    """One fastmm initiator session against the peer, recording its events."""

    def __init__(self, peer: QfPeer, sender: str, target: str, *, reset: bool = True, secret: str = SECRET,
                 store: MemorySeqStore | None = None) -> None:
        self.events: list[Event] = []
        self.session = FixSession(SessionSettings(sender, target, heartbeat_s=1, reset_on_logon=reset),
                                  store or MemorySeqStore(), logon_fields=LogonCredentials(KEY_ID, secret),
                                  decoder=CODEC.decode)
        self.ini = FixInitiator(self.session, "127.0.0.1", peer.port, lambda c, e: self.events.append(e),
                                backoff=Backoff(0.05, 0.2, seed=11))
        self.task: asyncio.Task[None] | None = None

    async def start(self, logon: bool = True) -> None:
        self.task = asyncio.create_task(self.ini.run())
        if logon:
            await self.ini.wait_logged_on(10)

    async def stop(self) -> None:
        await self.ini.stop("done")
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)

    def records(self, kind: type) -> list[Any]:
        return [e.record for e in self.events if isinstance(e, AppMessage) and isinstance(e.record, kind)]

    async def until(self, cond: Callable[[], bool], timeout: float = 5.0) -> None:
        end = asyncio.get_running_loop().time() + timeout
        while not cond():
            if asyncio.get_running_loop().time() > end:
                raise AssertionError(f"timed out; events: {self.events[-8:]}")
            await asyncio.sleep(0.01)


def no_rejects(peer: QfPeer, *sides: Side) -> None:
    bad = peer.all(lambda e: e["ev"] in ("in", "out") and msg_type(e) in ("3", "j"))
    assert bad == [], bad
    for s in sides:
        assert not [e for e in s.events if isinstance(e, SessionRejectSent | SessionRejectReceived)]


def test_orders_both_sides_and_market_data_pass_truex_dictionaries(qf_peer: Callable[..., QfPeer]) -> None:
    peer = qf_peer([OE, MD])

    async def main() -> None:
        oe = Side(peer, "FASTMM_OE", "TRUEX_SIM_OE")
        md = Side(peer, "FASTMM_MD", "TRUEX_SIM_MD")
        await oe.start()
        await md.start()
        for side, (o, r, c), px in ((BUY, ("b1", "b2", "b3"), 119990), (SELL, ("s1", "s2", "s3"), 120010)):
            oe.ini.send(b"D", CODEC.new_order_single(o, side, 1000, px))
            oe.ini.send(b"G", CODEC.order_cancel_replace_request(r, o, 500, px + 1))
            oe.ini.send(b"F", CODEC.order_cancel_request(c, r))
        md.ini.send(b"V", CODEC.market_data_request("md-1"))
        await oe.until(lambda: len(oe.records(ExecutionReport)) == 6)
        await md.until(lambda: len(md.records(MarketDataSnapshot)) == 1)
        ers = oe.records(ExecutionReport)
        assert [(e.cl_ord_id, e.exec_type) for e in ers] == [
            ("b1", "0"), ("b2", "5"), ("b3", "4"), ("s1", "0"), ("s2", "5"), ("s3", "4")]
        assert ers[1].price == 119991 and ers[1].order_qty == 500 and ers[3].side == SELL
        snap = md.records(MarketDataSnapshot)[0]
        assert snap.md_req_id == "md-1" and [(x.entry_type, x.price, x.size) for x in snap.entries] == [
            ("0", 120000, 5000), ("1", 120001, 2500)]
        await asyncio.sleep(1.2)  # a heartbeat each way under validation too
        await oe.stop()
        await md.stop()
        await peer.wait_count(lambda e: e["ev"] == "logout", 2, 5)
        no_rejects(peer, oe, md)
        assert len(peer.all(lambda e: e["ev"] == "auth_ok")) == 2
        await peer.wait(lambda e: e["ev"] == "in" and msg_type(e) == "0" and e["s"] == "oe", 5)
        md_in = peer.all(lambda e: e["ev"] == "in" and e["s"] == "md" and msg_type(e) == "V")
        oe_v = peer.all(lambda e: e["ev"] == "in" and e["s"] == "oe" and msg_type(e) == "V")
        assert len(md_in) == 1 and oe_v == []  # never a MarketDataRequest on the order-entry session

    run(main())


def test_skipped_sequence_numbers_and_poss_dup_duplicates(qf_peer: Callable[..., QfPeer]) -> None:
    peer = qf_peer([OE])

    async def main() -> None:
        oe = Side(peer, "FASTMM_OE", "TRUEX_SIM_OE")
        await oe.start()
        expected = oe.session.next_target
        peer.cmd(cmd="skip", s="oe", n=3)  # QuickFIX jumps 3 numbers...
        await peer.wait(lambda e: e["ev"] == "seq" and e["cmd"] == "skip", 5)
        peer.cmd(cmd="er", s="oe", cl="gap1")  # ...and sends an ExecutionReport after the hole
        await oe.until(lambda: any(isinstance(e, GapFilled) for e in oe.events))
        await oe.until(lambda: peer.find(lambda e: e["ev"] == "out" and field(e, 43) == "Y"
                                         and msg_type(e) == "8") is not None)
        await asyncio.sleep(0.3)  # the PossDup copy reaches fastmm and must be ignored
        rr = await peer.wait(lambda e: e["ev"] == "in" and msg_type(e) == "2", 5)
        assert rr is not None and field(rr, 7) == str(expected) and field(rr, 16) == "0"
        assert GapDetected(expected, expected + 3) in oe.events
        gf = await peer.wait(lambda e: e["ev"] == "out" and msg_type(e) == "4", 5)
        assert gf is not None and field(gf, 123) == "Y"
        assert [e.cl_ord_id for e in oe.records(ExecutionReport)] == ["gap1"]  # once, not twice
        oe.ini.send(b"D", CODEC.new_order_single("after", BUY, 1, 120000))
        await oe.until(lambda: len(oe.records(ExecutionReport)) == 2)
        assert oe.session.state is State.ACTIVE and not oe.session.gap_outstanding
        await oe.stop()
        await peer.wait(lambda e: e["ev"] == "logout", 5)
        no_rejects(peer, oe)

    run(main())


def test_logon_answer_with_too_high_seq_is_recovered(qf_peer: Callable[..., QfPeer]) -> None:
    peer = qf_peer([OE2])

    async def main() -> None:
        peer.cmd(cmd="set_next_sender", s="oe2", n=5)
        await peer.wait(lambda e: e["ev"] == "seq" and e["cmd"] == "set_next_sender", 5)
        oe = Side(peer, "FASTMM_OE2", "TRUEX_SIM_OE2", reset=False)
        await oe.start()
        await oe.until(lambda: any(isinstance(e, GapFilled) for e in oe.events))
        assert GapDetected(1, 5) in oe.events
        rr = await peer.wait(lambda e: e["ev"] == "in" and msg_type(e) == "2", 5)
        assert rr is not None and field(rr, 7) == "1"
        assert oe.session.next_target >= 6
        oe.ini.send(b"D", CODEC.new_order_single("hi1", BUY, 1, 120000))
        await oe.until(lambda: len(oe.records(ExecutionReport)) == 1)
        await oe.stop()
        await peer.wait(lambda e: e["ev"] == "logout", 5)
        no_rejects(peer, oe)

    run(main())


def test_disconnect_mid_session_reconnects_and_logs_on_again(qf_peer: Callable[..., QfPeer]) -> None:
    peer = qf_peer([OE])

    async def main() -> None:
        oe = Side(peer, "FASTMM_OE", "TRUEX_SIM_OE")
        await oe.start()
        oe.ini.send(b"D", CODEC.new_order_single("c1", BUY, 1, 120000))
        await oe.until(lambda: len(oe.records(ExecutionReport)) == 1)
        peer.cmd(cmd="disconnect", s="oe")
        await oe.until(lambda: oe.ini.connects == 2 and oe.session.state is State.ACTIVE, 10)
        oe.ini.send(b"D", CODEC.new_order_single("c2", SELL, 1, 120010))
        await oe.until(lambda: len(oe.records(ExecutionReport)) == 2)
        await oe.stop()
        await peer.wait_count(lambda e: e["ev"] == "logon", 2, 5)
        no_rejects(peer, oe)

    run(main())


def test_validation_is_on_a_field_outside_truex_dictionary_is_rejected(qf_peer: Callable[..., QfPeer]) -> None:
    """Negative control: the same acceptor does reject what TrueX's dictionary does not allow (ExecInst
    18 is not in TrueX's published NewOrderSingle), so the no-Reject results above mean something."""
    peer = qf_peer([OE])

    async def main() -> None:
        oe = Side(peer, "FASTMM_OE", "TRUEX_SIM_OE")
        await oe.start()
        post_only = TruexCodec(CODEC.instrument, CLIENT_ID, exec_inst="6")
        seq = oe.ini.send(b"D", post_only.new_order_single("po1", BUY, 1, 120000))
        await oe.until(lambda: any(isinstance(e, SessionRejectReceived) for e in oe.events))
        rej = next(e for e in oe.events if isinstance(e, SessionRejectReceived))
        assert rej.ref_seq == seq and rej.ref_tag == 18 and rej.ref_msg_type == "D"
        assert oe.records(ExecutionReport) == []
        await oe.stop()

    run(main())


def test_wrong_secret_is_refused_by_quickfix(qf_peer: Callable[..., QfPeer]) -> None:
    peer = qf_peer([OE])

    async def main() -> None:
        oe = Side(peer, "FASTMM_OE", "TRUEX_SIM_OE", secret="not-the-secret")
        oe.ini.reconnect = False
        await oe.start(logon=False)
        assert oe.task is not None
        await asyncio.wait_for(oe.task, 10)
        await peer.wait(lambda e: e["ev"] == "auth_failed", 5)
        assert any(isinstance(e, DisconnectWanted) for e in oe.events)
        assert peer.find(lambda e: e["ev"] == "logon") is None

    run(main())


def test_quickfix_resets_sequences_with_a_logon_mid_session(qf_peer: Callable[..., QfPeer]) -> None:
    """Issue 19 item 1: a venue's scheduled reset (Logon 34=1 141=Y while logged on) is answered with a
    Logon 141=Y; both sides go on from 1 and orders still flow, with no Reject and no Logout."""
    peer = qf_peer([OE])

    async def main() -> None:
        oe = Side(peer, "FASTMM_OE", "TRUEX_SIM_OE")
        await oe.start()
        for i in range(3):
            oe.ini.send(b"D", CODEC.new_order_single(f"r{i}", BUY, 1, 120000))
        await oe.until(lambda: len(oe.records(ExecutionReport)) == 3)
        assert oe.session.next_sender > 4
        peer.cmd(cmd="reset_logon", s="oe")
        await oe.until(lambda: any(isinstance(e, SessionResetByLogon) for e in oe.events))
        ans = await peer.wait(lambda e: e["ev"] == "in" and msg_type(e) == "A" and field(e, 141) == "Y"
                              and field(e, 34) == "1", 5)
        assert ans is not None
        oe.ini.send(b"D", CODEC.new_order_single("after-reset", BUY, 1, 120000))
        await oe.until(lambda: len(oe.records(ExecutionReport)) == 4)
        d = await peer.wait(lambda e: e["ev"] == "in" and msg_type(e) == "D" and field(e, 11) == "after-reset", 5)
        assert field(d, 34) == "2"
        assert oe.session.state is State.ACTIVE and oe.ini.connects == 1
        await oe.stop()
        await peer.wait(lambda e: e["ev"] == "logout", 5)
        no_rejects(peer, oe)

    run(main())
