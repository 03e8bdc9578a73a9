"""TrueX application messages: builders with exactly TrueX's field set, parsers into typed records.

Pure (no I/O). Builders return the body run (``tag=value<SOH>...``) that :meth:`FixSession.send` frames;
they are one bytes ``%`` format each over pre-built pieces, so the hot path makes no per-field objects.
Parsers turn a received :class:`~fastmm.fix.codec.Message` into slotted records with prices in integer
ticks and sizes in integer lots of the :class:`~fastmm.instrument.Instrument`; a message that breaks
TrueX's dictionary (required tag missing, number malformed, value off the tick/lot grid) raises
:class:`~fastmm.fix.session.RejectMessage`, which the session answers with a Reject (35=3).

Field sets (TrueX_FIX50SP2.xml, venue facts section 1):

* NewOrderSingle D: 11, Parties (453=1, 448, 452=3), 55, 167=CSPOT, 54, 40, 38, 44, 59 [, 2964];
* OrderCancelRequest F: 41, 11, Parties (no Symbol, no Side);
* OrderCancelReplaceRequest G: Parties, 41, 11, 40, 38, 44 (no Symbol, no Side);
* MarketDataRequest V: 262, 263, 146=1, 55, 167 (market-data session only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, NamedTuple

from fastmm.fix.codec import (
    REJ_DATA_FORMAT,
    REJ_GROUP_COUNT,
    REJ_REQUIRED_TAG_MISSING,
    REJ_VALUE_INCORRECT,
    Message,
    parse_timestamp,
    value_bytes,
)
from fastmm.fix.session import RejectMessage
from fastmm.instrument import Instrument
from fastmm.speedups import compiled_twin

# The compiled twins of the hot parsers (_decode_fast.pyx); None: the pure ones run.
_er_compiled = compiled_twin("fastmm.venues.truex._decode_fast", "execution_report")
_mdi_compiled = compiled_twin("fastmm.venues.truex._decode_fast", "md_incremental")
COMPILED = _er_compiled is not None and _mdi_compiled is not None
# ... and of the order builders (_encode_fast.pyx)
_nos_compiled = compiled_twin("fastmm.venues.truex._encode_fast", "new_order_single")
_ocr_compiled = compiled_twin("fastmm.venues.truex._encode_fast", "order_cancel_request")
_ocrr_compiled = compiled_twin("fastmm.venues.truex._encode_fast", "order_cancel_replace_request")
ENCODE_COMPILED = _nos_compiled is not None and _ocr_compiled is not None and _ocrr_compiled is not None

BUY, SELL = "1", "2"
MARKET, LIMIT = "1", "2"
GTC, IOC = "1", "3"
SUBSCRIBE, UNSUBSCRIBE = "1", "2"

ORDER_ENTRY_TYPES = frozenset({b"8", b"9", b"j"})
MARKET_DATA_TYPES = frozenset({b"W", b"X", b"Y", b"j", b"y", b"BK"})

_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
_SHORT_ID = re.compile(r"[\x21-\x7e]{1,18}\Z")


def valid_cl_ord_id(s: str) -> bool:
    """TrueX accepts a lowercase UUIDv4 with hyphens, or at most 18 printable ASCII characters."""
    return bool(_UUID4.match(s) or _SHORT_ID.match(s)) and "=" not in s


class Scaled:
    """Exact integer <-> wire text for multiples of one increment (a price tick or a quantity lot)."""

    __slots__ = ("_cache", "_exp", "_mult", "_pow", "step")
    _CACHE_MAX = 4096  # prices and sizes repeat: remember the last few thousand parses

    def __init__(self, step: Decimal) -> None:
        if step <= 0:
            raise ValueError("increment must be positive")
        exp = step.normalize().as_tuple().exponent
        assert isinstance(exp, int)
        self.step = step
        self._exp = max(0, -exp)  # decimal places of the scaled integer unit
        self._pow = 10 ** self._exp
        self._mult = int(step * self._pow)  # step in scaled units
        self._cache: dict[bytes, int] = {}

    def text(self, n: int) -> bytes:
        v = n * self._mult
        if not self._exp:
            return b"%d" % v
        neg = v < 0
        whole, frac = divmod(abs(v), self._pow)
        if not frac:
            return b"-%d" % whole if neg else b"%d" % whole
        f = (b"%0*d" % (self._exp, frac)).rstrip(b"0")
        return b"%b%d.%b" % (b"-" if neg else b"", whole, f)

    def parse(self, b: bytes) -> int:
        """Wire text to a count of increments; ValueError when malformed or off the grid."""
        n = self._cache.get(b)
        if n is not None:
            return n
        n = self._parse(b)
        if len(self._cache) >= self._CACHE_MAX:
            self._cache.clear()
        self._cache[b] = n
        return n

    def _parse(self, b: bytes) -> int:
        whole, _, frac = b.partition(b".")
        neg = whole[:1] == b"-"
        if neg:
            whole = whole[1:]
        if (not (whole.isdigit() or (not whole and frac)) or (frac and not frac.isdigit())
                or len(whole) > 18 or len(frac) > 18):
            raise ValueError(f"not a decimal number: {b[:24]!r}")
        frac = frac.rstrip(b"0")
        if len(frac) > self._exp:
            raise ValueError(f"{b[:24]!r} is not a multiple of {self.step}")
        v = (int(whole) if whole else 0) * self._pow + (int(frac.ljust(self._exp, b"0")) if frac else 0)
        n, r = divmod(v, self._mult)
        if r:
            raise ValueError(f"{b[:24]!r} is not a multiple of {self.step}")
        return -n if neg else n


# -- records -------------------------------------------------------------------------------------------
class MiscFee(NamedTuple):
    amount: Decimal
    fee_type: str  # 139: "4" exchange fees


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    seq: int
    poss_dup: bool
    order_id: str
    cl_ord_id: str
    orig_cl_ord_id: str
    exec_id: str
    exec_type: str  # 0 new, 4 canceled, 5 replaced, 6 pending cancel, 8 rejected, A, C, E, F trade
    ord_status: str
    side: str
    ord_type: str
    price: int  # ticks; 0 when absent
    order_qty: int  # lots
    last_px: int  # ticks
    last_qty: int  # lots
    leaves_qty: int
    cum_qty: int
    avg_px: str  # text: an average need not be on the tick grid
    tif: str
    transact_time_ns: int
    text: str
    liquidity: int  # 851: 1 added, 2 removed, 0 absent
    fees: tuple[MiscFee, ...]
    trd_match_id: str
    party_id: str


@dataclass(frozen=True, slots=True)
class OrderCancelReject:
    seq: int
    order_id: str
    cl_ord_id: str
    orig_cl_ord_id: str
    response_to: str  # 434: 1 cancel, 2 replace
    reason: int  # 102; -1 when absent
    ord_status: str
    text: str


@dataclass(frozen=True, slots=True)
class BusinessMessageReject:
    seq: int
    ref_seq: int
    ref_msg_type: str
    ref_id: str
    reason: int  # 380: 8/9/10 throttle
    text: str


class MDEntry(NamedTuple):
    entry_type: str  # 269: 0 bid, 1 offer, 2 trade
    price: int  # ticks (0 with size 0 = empty book)
    size: int  # lots
    level: int  # 1023; 0 when absent
    time_ns: int  # 273; 0 when absent or unreadable
    aggressor: str  # 2446
    action: str  # 279 (incremental): 0 new, 1 change, 2 delete; "" in a snapshot
    entry_id: str  # 278


@dataclass(frozen=True, slots=True)
class MarketDataSnapshot:
    seq: int
    md_req_id: str
    symbol: str
    entries: tuple[MDEntry, ...]


@dataclass(frozen=True, slots=True)
class MarketDataIncremental:
    seq: int
    md_req_id: str
    entries: tuple[MDEntry, ...]


@dataclass(frozen=True, slots=True)
class MarketDataRequestReject:
    seq: int
    md_req_id: str
    text: str


Record = (ExecutionReport | OrderCancelReject | BusinessMessageReject | MarketDataSnapshot
          | MarketDataIncremental | MarketDataRequestReject)


def _s(v: bytes | None) -> str:
    return v.decode("ascii", "replace") if v else ""


def _need(d: dict[int, bytes], tag: int, mt: str) -> bytes:
    v = d.get(tag)
    if v is None:
        raise RejectMessage(REJ_REQUIRED_TAG_MISSING, tag, f"required tag {tag} missing in 35={mt}")
    return v


def _int(d: dict[int, bytes], tag: int, default: int) -> int:
    v = d.get(tag)
    if v is None:
        return default
    if not (v.isdigit() or (v[:1] == b"-" and v[1:].isdigit())) or len(v) > 18:
        raise RejectMessage(REJ_DATA_FORMAT, tag, f"tag {tag} is not an integer")
    return int(v)


class TruexCodec:
    """Builders and parsers for one instrument and one TrueX client id."""

    def __init__(self, instrument: Instrument, client_id: str = "", exec_inst: str = "") -> None:
        self.instrument = instrument
        self.px = Scaled(instrument.tick_size)
        self.qty = Scaled(instrument.lot_size)
        cid = value_bytes(client_id) if client_id else b""
        self._parties = b"453=1\x01448=%b\x01452=3\x01" % cid if cid else b""
        self._instr = b"55=%b\x01167=%b\x01" % (value_bytes(instrument.symbol),
                                                value_bytes(instrument.security_type))
        self._exec_inst = b"18=%b\x01" % value_bytes(exec_inst) if exec_inst else b""

    def set_client_id(self, client_id: str) -> None:
        """The client id learnt at start (REST ``GET /client``) when the config has none."""
        self._parties = b"453=1\x01448=%b\x01452=3\x01" % value_bytes(client_id)

    def _parties_or_fail(self) -> bytes:
        if not self._parties:
            raise ValueError("TrueX orders need the client id (FASTMM_TRUEX_CLIENT_ID) for Parties 448")
        return self._parties

    # -- builders (bodies) --------------------------------------------------------------------------
    def new_order_single(self, cl_ord_id: str, side: str, qty_lots: int, price_ticks: int | None,
                         ord_type: str = LIMIT, tif: str = GTC, smp: int | None = None) -> bytes:
        """The pure twin and the reference (also ``new_order_single_py``), as the two builders below;
        where the build had a C compiler each is ``_encode_fast``'s: the same bytes, the same errors."""
        if not valid_cl_ord_id(cl_ord_id):
            raise ValueError(f"ClOrdID {cl_ord_id!r} is not a lowercase UUIDv4 or <= 18 ASCII characters")
        if side not in (BUY, SELL) or ord_type not in (LIMIT, MARKET) or tif not in (GTC, IOC):
            raise ValueError(f"bad side/ord_type/tif {side!r}/{ord_type!r}/{tif!r}")
        if qty_lots <= 0:
            raise ValueError("quantity must be positive")
        px = b""
        if ord_type == LIMIT:
            if price_ticks is None or price_ticks <= 0:
                raise ValueError("a limit order needs a positive price")
            px = b"44=%b\x01" % self.px.text(price_ticks)
        body = b"11=%b\x01%b%b54=%b\x0140=%b\x0138=%b\x01%b59=%b\x01%b" % (
            cl_ord_id.encode(), self._parties_or_fail(), self._instr, side.encode(), ord_type.encode(),
            self.qty.text(qty_lots), px, tif.encode(), self._exec_inst)
        if smp is not None:
            body += b"2964=%d\x01" % smp
        return body

    new_order_single_py = new_order_single
    if _nos_compiled is not None and not TYPE_CHECKING:
        new_order_single = _nos_compiled

    def order_cancel_request(self, cl_ord_id: str, orig_cl_ord_id: str) -> bytes:
        if not (valid_cl_ord_id(cl_ord_id) and valid_cl_ord_id(orig_cl_ord_id)):
            raise ValueError("ClOrdID/OrigClOrdID must be a lowercase UUIDv4 or <= 18 ASCII characters")
        return b"41=%b\x0111=%b\x01%b" % (orig_cl_ord_id.encode(), cl_ord_id.encode(),
                                          self._parties_or_fail())

    order_cancel_request_py = order_cancel_request
    if _ocr_compiled is not None and not TYPE_CHECKING:
        order_cancel_request = _ocr_compiled

    def order_cancel_replace_request(self, cl_ord_id: str, orig_cl_ord_id: str, qty_lots: int,
                                     price_ticks: int, ord_type: str = LIMIT) -> bytes:
        if not (valid_cl_ord_id(cl_ord_id) and valid_cl_ord_id(orig_cl_ord_id)):
            raise ValueError("ClOrdID/OrigClOrdID must be a lowercase UUIDv4 or <= 18 ASCII characters")
        if qty_lots <= 0 or price_ticks <= 0 or ord_type != LIMIT:
            raise ValueError("a replace needs a positive quantity and price, limit orders only")
        return b"%b41=%b\x0111=%b\x0140=%b\x0138=%b\x0144=%b\x01" % (
            self._parties_or_fail(), orig_cl_ord_id.encode(), cl_ord_id.encode(), ord_type.encode(),
            self.qty.text(qty_lots), self.px.text(price_ticks))

    order_cancel_replace_request_py = order_cancel_replace_request
    if _ocrr_compiled is not None and not TYPE_CHECKING:
        order_cancel_replace_request = _ocrr_compiled

    def market_data_request(self, md_req_id: str, subscription: str = SUBSCRIBE) -> bytes:
        if subscription not in ("0", SUBSCRIBE, UNSUBSCRIBE):
            raise ValueError(f"bad SubscriptionRequestType {subscription!r}")
        return b"262=%b\x01263=%b\x01146=1\x01%b" % (value_bytes(md_req_id), subscription.encode(),
                                                      self._instr)

    # -- parsers ---------------------------------------------------------------------------------------
    def decode(self, msg: Message) -> Record | None:
        """The session's ``decoder`` hook: a typed record for the types fastmm uses, else None."""
        mt = msg.msg_type
        if mt == b"8":
            return self.execution_report(msg)
        if mt == b"X":
            return self.md_incremental(msg)
        if mt == b"W":
            return self.md_snapshot(msg)
        if mt == b"9":
            return self.order_cancel_reject(msg)
        if mt == b"j":
            return self.business_reject(msg)
        if mt == b"Y":
            d = dict(msg.fields)
            return MarketDataRequestReject(msg.seq, _s(_need(d, 262, "Y")), _s(d.get(58)))
        return None

    def _ticks(self, d: dict[int, bytes], tag: int, mt: str) -> int:
        v = d.get(tag)
        if v is None:
            return 0
        try:
            return self.px.parse(v)
        except ValueError as e:
            raise RejectMessage(REJ_VALUE_INCORRECT, tag, f"35={mt} tag {tag}: {e}") from None

    def _lots(self, d: dict[int, bytes], tag: int, mt: str, required: bool = False) -> int:
        v = d.get(tag)
        if v is None:
            if required:
                raise RejectMessage(REJ_REQUIRED_TAG_MISSING, tag, f"required tag {tag} missing in 35={mt}")
            return 0
        try:
            return self.qty.parse(v)
        except ValueError as e:
            raise RejectMessage(REJ_VALUE_INCORRECT, tag, f"35={mt} tag {tag}: {e}") from None

    def execution_report(self, msg: Message) -> ExecutionReport:
        """The pure twin and the reference (also ``execution_report_py``); where the build had a C
        compiler, ``execution_report`` is ``_decode_fast.execution_report``: equal records, same errors."""
        d = dict(msg.fields)
        for tag in (37, 17, 150, 39, 54, 151, 14):
            _need(d, tag, "8")
        fees: tuple[MiscFee, ...] = ()
        if 136 in d:
            fees = self._fees(msg)
        tt = d.get(60)
        try:
            t_ns = parse_timestamp(tt) if tt else 0
        except ValueError as e:
            raise RejectMessage(REJ_DATA_FORMAT, 60, f"35=8 TransactTime: {e}") from None
        return ExecutionReport(
            msg.seq, msg.poss_dup, _s(d[37]), _s(d.get(11)), _s(d.get(41)), _s(d[17]), _s(d[150]),
            _s(d[39]), _s(d[54]), _s(d.get(40)), self._ticks(d, 44, "8"), self._lots(d, 38, "8"),
            self._ticks(d, 31, "8"), self._lots(d, 32, "8"), self._lots(d, 151, "8"), self._lots(d, 14, "8"),
            _s(d.get(6)), _s(d.get(59)), t_ns, _s(d.get(58)), _int(d, 851, 0), fees, _s(d.get(880)),
            _s(d.get(448)))

    execution_report_py = execution_report
    if _er_compiled is not None and not TYPE_CHECKING:
        execution_report = _er_compiled

    @staticmethod
    def _fees(msg: Message) -> tuple[MiscFee, ...]:
        out: list[MiscFee] = []
        amount: Decimal | None = None
        for t, v in msg.fields:
            if t == 137:
                try:
                    amount = Decimal(v.decode("ascii"))
                except (InvalidOperation, UnicodeDecodeError):
                    raise RejectMessage(REJ_DATA_FORMAT, 137, "MiscFeeAmt is not a number") from None
                if not amount.is_finite():
                    raise RejectMessage(REJ_DATA_FORMAT, 137, "MiscFeeAmt is not a number")
                out.append(MiscFee(amount, ""))
            elif t == 139 and out:
                out[-1] = MiscFee(out[-1].amount, _s(v))
        return tuple(out)

    def order_cancel_reject(self, msg: Message) -> OrderCancelReject:
        d = dict(msg.fields)
        for tag in (37, 11, 434, 39):
            _need(d, tag, "9")
        return OrderCancelReject(msg.seq, _s(d[37]), _s(d[11]), _s(d.get(41)), _s(d[434]), _int(d, 102, -1),
                                 _s(d[39]), _s(d.get(58)))

    def business_reject(self, msg: Message) -> BusinessMessageReject:
        d = dict(msg.fields)
        _need(d, 372, "j")
        _need(d, 380, "j")
        return BusinessMessageReject(msg.seq, _int(d, 45, 0), _s(d[372]), _s(d.get(379)), _int(d, 380, 0),
                                     _s(d.get(58)))

    def md_snapshot(self, msg: Message) -> MarketDataSnapshot:
        md_req_id, symbol, entries = self._md_entries(msg, "W")
        return MarketDataSnapshot(msg.seq, md_req_id, symbol, entries)

    def md_incremental(self, msg: Message) -> MarketDataIncremental:
        """The pure twin and the reference (also ``md_incremental_py``); compiled twin as above."""
        md_req_id, _, entries = self._md_entries(msg, "X")
        return MarketDataIncremental(msg.seq, md_req_id, entries)

    md_incremental_py = md_incremental
    if _mdi_compiled is not None and not TYPE_CHECKING:
        md_incremental = _mdi_compiled

    def _md_entries(self, msg: Message, mt: str) -> tuple[str, str, tuple[MDEntry, ...]]:
        """One pass over the fields: the NoMDEntries group starts a new entry at each delimiter."""
        delim = 269 if mt == "W" else 279
        md_req_id = symbol = ""
        count = -1
        entries: list[MDEntry] = []
        cur: dict[int, bytes] | None = None
        px, qty = self.px, self.qty
        for t, v in msg.fields:
            if t == 268:
                if not v.isdigit() or len(v) > 6:
                    raise RejectMessage(REJ_DATA_FORMAT, 268, "NoMDEntries is not a number")
                count = int(v)
            elif count < 0:
                if t == 262:
                    md_req_id = _s(v)
                elif t == 55:
                    symbol = _s(v)
            elif t == delim:
                if cur is not None:
                    entries.append(self._entry(cur, px, qty, mt))
                cur = {t: v}
            elif cur is not None and t != 10:
                cur[t] = v
        if cur is not None:
            entries.append(self._entry(cur, px, qty, mt))
        if count < 0:
            raise RejectMessage(REJ_REQUIRED_TAG_MISSING, 268, f"NoMDEntries missing in 35={mt}")
        if count != len(entries):
            raise RejectMessage(REJ_GROUP_COUNT, 268, f"NoMDEntries {count} but {len(entries)} entries")
        return md_req_id, symbol, tuple(entries)

    def _entry(self, e: dict[int, bytes], px: Scaled, qty: Scaled, mt: str) -> MDEntry:
        if mt == "X" and 269 not in e and e.get(279) != b"2":
            raise RejectMessage(REJ_REQUIRED_TAG_MISSING, 269, "MDEntryType missing in 35=X entry")
        tm = e.get(273)
        t_ns = 0
        if tm:
            try:
                t_ns = parse_timestamp(tm)
            except ValueError:
                t_ns = 0  # informational only; TrueX sends 19700101-00:00:00.000000000 on empty books
        try:
            price = px.parse(e[270]) if 270 in e else 0
            size = qty.parse(e[271]) if 271 in e else 0
        except ValueError as err:
            raise RejectMessage(REJ_VALUE_INCORRECT, 270, f"35={mt} entry: {err}") from None
        return MDEntry(_s(e.get(269)), price, size, _int(e, 1023, 0), t_ns, _s(e.get(2446)),
                       _s(e.get(279)), _s(e.get(278)))
