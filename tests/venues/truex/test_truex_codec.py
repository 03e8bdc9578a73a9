"""TrueX application messages: exact field sets out, typed integer records in."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastmm.config import InstrumentConfig
from fastmm.core.ids import ClOrdIdGen, base36
from fastmm.fix.codec import Encoder, FrameParser, Message
from fastmm.fix.session import RejectMessage
from fastmm.instrument import Instrument
from fastmm.venues.truex.codec import (
    BUY,
    IOC,
    SELL,
    BusinessMessageReject,
    ExecutionReport,
    MarketDataIncremental,
    MarketDataRequestReject,
    MarketDataSnapshot,
    MDEntry,
    OrderCancelReject,
    Scaled,
    TruexCodec,
    valid_cl_ord_id,
)

INSTR = Instrument.from_config(InstrumentConfig())
C = TruexCodec(INSTR, "CLIENT1")
UAT_W = (b"8=FIXT.1.1|9=236|35=W|49=TRUEX_UAT_GW|56=CLI_CLIENT|34=2|52=20250910-14:39:14.463394|"
         b"262=MD_BTC_1757515154372|55=BTC-PYUSD|167=CSPOT|268=2|269=0|270=0|271=0|1023=1|"
         b"273=19700101-00:00:00.000000000|269=1|270=0|271=0|1023=1|273=19700101-00:00:00.000000000|10=019|"
         ).replace(b"|", b"\x01")


def msg(mt: bytes, body: str, seq: int = 5) -> Message:
    raw = Encoder("FIXT.1.1", "TRUEX", "FASTMM").encode(mt, seq, b"20250910-14:39:14.463394",
                                                       (body + "|").replace("|", "\x01").encode())
    (m,) = FrameParser().feed(raw)
    assert isinstance(m, Message)
    return m


def tags(body: bytes) -> list[int]:
    return [int(p.partition(b"=")[0]) for p in body.rstrip(b"\x01").split(b"\x01")]


# -- builders ------------------------------------------------------------------------------------------
def test_new_order_single_has_exactly_truex_fields() -> None:
    body = C.new_order_single("o1", BUY, 1000, 120001)
    assert body == (b"11=o1\x01453=1\x01448=CLIENT1\x01452=3\x0155=BTC-PYUSD\x01167=CSPOT\x0154=1\x01"
                    b"40=2\x0138=0.1\x0144=60000.5\x0159=1\x01")
    ioc = C.new_order_single("o2", SELL, 1, None, ord_type="1", tif=IOC, smp=1)
    assert tags(ioc) == [11, 453, 448, 452, 55, 167, 54, 40, 38, 59, 2964] and b"38=0.0001" in ioc


def test_cancel_and_replace_have_no_symbol_or_side() -> None:
    f = C.order_cancel_request("o3", "o1")
    assert tags(f) == [41, 11, 453, 448, 452]
    g = C.order_cancel_replace_request("o4", "o3", 12345, 120000)
    assert tags(g) == [453, 448, 452, 41, 11, 40, 38, 44]
    assert b"38=1.2345\x01" in g and b"44=60000\x01" in g


def test_market_data_request() -> None:
    assert C.market_data_request("md1") == b"262=md1\x01263=1\x01146=1\x0155=BTC-PYUSD\x01167=CSPOT\x01"
    assert b"263=2\x01" in C.market_data_request("md1", "2")


def test_builder_refuses_bad_orders() -> None:
    with pytest.raises(ValueError, match="ClOrdID"):
        C.new_order_single("x" * 19, BUY, 1, 1)
    with pytest.raises(ValueError):
        C.new_order_single("o", "3", 1, 1)
    with pytest.raises(ValueError):
        C.new_order_single("o", BUY, 0, 1)
    with pytest.raises(ValueError, match="client id"):
        TruexCodec(INSTR).new_order_single("o", BUY, 1, 1)


def test_cl_ord_id_rules_and_generator() -> None:
    assert valid_cl_ord_id("123e4567-e89b-42d3-a456-426614174000")
    assert not valid_cl_ord_id("123E4567-E89B-42D3-A456-426614174000")  # uppercase uuid, 36 chars
    assert valid_cl_ord_id("a" * 18) and not valid_cl_ord_id("a" * 19) and not valid_cl_ord_id("")
    assert not valid_cl_ord_id("a b") and not valid_cl_ord_id("a=b")
    # the engine's generator (fastmm.core.ids) with a run prefix as the quoter makes it: ids TrueX accepts
    g = ClOrdIdGen(base36(1_763_963_000_123 // 10)[-7:])
    ids = [g.next() for _ in range(5000)]
    assert len(set(ids)) == 5000 and all(valid_cl_ord_id(i) and len(i) <= 18 for i in ids)
    assert base36(0) == "0" and base36(35) == "z" and base36(36) == "10"


# -- parsers -----------------------------------------------------------------------------------------------
def test_execution_report_fill() -> None:
    m = msg(b"8", "37=O1|11=o1|453=1|448=CLIENT1|452=3|17=E9|150=F|39=1|55=BTC-PYUSD|167=CSPOT|54=1|40=2|"
                  "38=0.1|44=60000.5|59=1|32=0.04|31=60000.5|151=0.06|14=0.04|6=60000.5|"
                  "60=20250910-14:39:14.463394|851=1|136=1|137=0.0012|139=4|880=T1")
    er = C.decode(m)
    assert isinstance(er, ExecutionReport)
    assert (er.exec_type, er.ord_status, er.side, er.price, er.order_qty) == ("F", "1", "1", 120001, 1000)
    assert (er.last_px, er.last_qty, er.leaves_qty, er.cum_qty) == (120001, 400, 600, 400)
    assert er.liquidity == 1 and er.fees[0].amount == Decimal("0.0012") and er.fees[0].fee_type == "4"
    assert er.transact_time_ns == 1_757_515_154_463_394_000 and er.party_id == "CLIENT1" and er.seq == 5


def test_execution_report_reject_with_none_order_id() -> None:
    er = C.decode(msg(b"8", "37=NONE|11=o1|17=E1|150=8|39=8|55=BTC-PYUSD|54=1|38=0|151=0|14=0|"
                            "58=Invalid client"))
    assert isinstance(er, ExecutionReport) and er.order_id == "NONE" and er.text == "Invalid client"


def test_cancel_reject_and_business_reject() -> None:
    r = C.decode(msg(b"9", "37=O1|11=o5|41=o1|434=2|102=18|39=0|58=Invalid price increment"))
    assert r == OrderCancelReject(5, "O1", "o5", "o1", "2", 18, "0", "Invalid price increment")
    b = C.decode(msg(b"j", "45=9|372=D|379=o6|380=8|58=Throttle limit exceeded"))
    assert b == BusinessMessageReject(5, 9, "D", "o6", 8, "Throttle limit exceeded")


def test_uat_snapshot_and_incremental_and_reject() -> None:
    (w,) = FrameParser().feed(UAT_W)
    assert isinstance(w, Message)
    snap = C.decode(w)
    assert isinstance(snap, MarketDataSnapshot) and snap.md_req_id == "MD_BTC_1757515154372"
    assert snap.entries == (MDEntry("0", 0, 0, 1, 0, "", "", ""), MDEntry("1", 0, 0, 1, 0, "", "", ""))
    x = C.decode(msg(b"X", "262=md1|268=3|279=0|269=0|55=BTC-PYUSD|270=60000|271=0.5|1023=1|"
                           "279=2|269=1|270=60001|271=0|279=0|269=2|270=60000.5|271=0.01|2446=1|"
                           "273=20250910-14:39:14.463394123"))
    assert isinstance(x, MarketDataIncremental) and len(x.entries) == 3
    assert x.entries[0] == MDEntry("0", 120000, 5000, 1, 0, "", "0", "")
    assert x.entries[2].aggressor == "1" and x.entries[2].time_ns == 1_757_515_154_463_394_123
    rej = C.decode(msg(b"Y", "262=md1|58=unknown symbol"))
    assert rej == MarketDataRequestReject(5, "md1", "unknown symbol")


@pytest.mark.parametrize(("mt", "body", "reason", "tag"), [
    (b"8", "11=o1|17=E1|150=0|39=0|54=1|151=0|14=0", 1, 37),  # OrderID missing
    (b"8", "37=O|17=E|150=0|39=0|54=1|151=0.00005|14=0", 5, 151),  # off the lot grid
    (b"8", "37=O|17=E|150=0|39=0|54=1|151=abc|14=0", 5, 151),
    (b"8", "37=O|17=E|150=0|39=0|54=1|151=0|14=0|44=60000.25", 5, 44),  # off the tick grid
    (b"8", "37=O|17=E|150=0|39=0|54=1|151=0|14=0|60=yesterday", 6, 60),
    (b"8", "37=O|17=E|150=0|39=0|54=1|151=0|14=0|851=x", 6, 851),
    (b"W", "262=m|55=BTC-PYUSD|268=2|269=0|270=1|271=1", 16, 268),  # count mismatch
    (b"W", "262=m|55=BTC-PYUSD", 1, 268),
    (b"9", "37=O|11=o|434=1", 1, 39),
])
def test_malformed_messages_raise_reject(mt: bytes, body: str, reason: int, tag: int) -> None:
    with pytest.raises(RejectMessage) as e:
        C.decode(msg(mt, body))
    assert (e.value.reason, e.value.ref_tag) == (reason, tag)


def test_other_types_pass_through() -> None:
    assert C.decode(msg(b"y", "320=1")) is None


# -- numbers ---------------------------------------------------------------------------------------------
@given(st.integers(-10**12, 10**12))
def test_scaled_round_trip(n: int) -> None:
    for step in (Decimal("0.50"), Decimal("0.0001"), Decimal("1"), Decimal("25"), Decimal("0.00000001")):
        s = Scaled(step)
        text = s.text(n)
        assert s.parse(text) == n
        assert Decimal(text.decode()) == n * step


def test_scaled_matches_instrument_text() -> None:
    for n in (0, 1, 2, 3, 120001, 10**9 + 1):
        assert C.px.text(n).decode() == INSTR.price_text(n)
        assert C.qty.text(n).decode() == INSTR.qty_text(n)
