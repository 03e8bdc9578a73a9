"""The journal's records: one frozen dataclass per kind, and the one line format they are written in.

A line is one JSON object ``{"v": 2, "seq": N, "t_ns": T, "kind": K, ...}``. In it a side is ``"BUY"`` or
``"SELL"`` whatever the kind, money is an integer of 1e-8 (``*_e8``) and order state integer ticks and
lots; a field keeps one name and one meaning across kinds (a hedge fill has the same fields whether the
hedger or the quoter wrote it). Fields equal to their default are left out of the line.

Lines without ``"v"`` are the first format (before typed records) and are still read: sides ``"1"``/``"2"``
(TrueX), ``"buy"``/``"sell"`` (hedge orders) or ``"BUY"``/``"SELL"`` (hedge fills), money as decimal text
(``fee``, ``price``, ``cost``), and the hedger's hedge fill with ``lots`` and the order's cumulative fee.
:meth:`Record.legacy` renders a record back in that layout, for the readers written against it
(:func:`fastmm.journal.reader.read_journal`).

Fields a kind does not name (a tool's tag, a supervisor note's pid, the reconcile counts) are kept in
``extra`` and written back as they came. Pure: no files, no clock.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import orjson

from fastmm.core.types import Side
from fastmm.units import format_e8, round_e8

FORMAT_VERSION = 2
_LINE_HEAD = b'{"v":%d,"seq":' % FORMAT_VERSION + b"%d%b"
_HEAD = ("v", "seq", "t_ns", "kind")


class RecordError(ValueError):
    """A JSON object that is not a readable record of its kind (a missing or mistyped field)."""


# -- values ---------------------------------------------------------------------------------------------
def parse_side(v: object) -> Side:
    """Either format's spelling of a side."""
    s = str(v).upper() if v is not None else ""
    if s in ("1", "BUY", "B"):
        return Side.BUY
    if s in ("2", "SELL", "S"):
        return Side.SELL
    raise RecordError(f"not a side: {v!r}")


def to_e8(v: object) -> int:
    """A record's amount (decimal text or a number) as units of 1e-8, rounded half-even past the 8th
    decimal (fastmm.units.round_e8); a RecordError when it is not a finite amount."""
    try:
        d = v if isinstance(v, Decimal) else Decimal(str(v))
        if not d.is_finite():
            raise RecordError(f"not a finite amount: {v!r}")
        return round_e8(d)
    except (InvalidOperation, ValueError) as e:
        raise RecordError(f"not an amount: {v!r}") from e


def _int(v: object) -> int:
    if isinstance(v, bool) or v is None:
        raise RecordError(f"not an integer: {v!r}")
    if not isinstance(v, int | float | str | bytes | Decimal):
        raise RecordError(f"not an integer: {v!r}")
    try:
        return int(v)
    except (TypeError, ValueError) as e:
        raise RecordError(f"not an integer: {v!r}") from e


# a field's type, as the codec sees it
_INT, _OPT_INT, _STR, _BOOL, _SIDE, _OPT_SIDE = range(6)
_CODES = {int: _INT, int | None: _OPT_INT, str: _STR, bool: _BOOL, Side: _SIDE, Side | None: _OPT_SIDE}
_MISSING = dataclasses.MISSING


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    v1: str
    code: int
    default: Any
    money_text: bool      # first format wrote it as decimal text


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """What every record carries; ``seq`` is given by the writer, ``source`` names a writer other than
    the journal's owner (``supervisor``, ``cancel-orders``, ``rest``, ``quoter``)."""

    KIND: ClassVar[str] = ""
    V1: ClassVar[Mapping[str, str]] = {}                 # field -> its first-format name, where it differs
    V1_SIDE: ClassVar[tuple[str, str]] = ("1", "2")      # the first format's spelling of BUY, SELL
    _specs: ClassVar[tuple[_Spec, ...]] = ()

    t_ns: int = 0
    seq: int = 0
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=True)

    # -- the line ---------------------------------------------------------------------------------------
    def fields(self) -> dict[str, Any]:
        """The record as the current format writes it (without the head)."""
        out: dict[str, Any] = {}
        for s in self._specs:
            v = getattr(self, s.name)
            if v == s.default and s.default is not _MISSING:
                continue
            out[s.name] = v.name if isinstance(v, Side) else v
        if self.source:
            out["source"] = self.source
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    def to_line(self, seq: int | None = None) -> bytes:
        """One JSON line of the current format (``seq`` the writer's, else the record's)."""
        head = {"v": FORMAT_VERSION, "seq": self.seq if seq is None else seq, "t_ns": self.t_ns,
                "kind": self.KIND}
        return orjson.dumps(head | self.fields(), default=json_default) + b"\n"

    @staticmethod
    def from_line(line: bytes) -> Record:
        """The record of one line of either format."""
        try:
            d = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise RecordError(f"not JSON: {e}") from None
        return from_dict(d)

    def legacy(self) -> dict[str, Any]:
        """The record in the first format's layout (sides, money text and names as they were)."""
        out: dict[str, Any] = {"seq": self.seq, "t_ns": self.t_ns, "kind": self.KIND}
        for s in self._specs:
            v = getattr(self, s.name)
            if isinstance(v, Side):
                v = self.V1_SIDE[0] if v == Side.BUY else self.V1_SIDE[1]
            elif s.money_text and v is not None:
                v = format_e8(v)
            out[s.v1] = v
        if self.source:
            out["source"] = self.source
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    @classmethod
    def _from(cls, d: Mapping[str, Any], v1: bool) -> Record:
        kw: dict[str, Any] = {}
        used = set(_HEAD)
        for s in cls._specs:
            key = s.v1 if v1 else s.name
            used.add(key)
            raw = d.get(key, _MISSING)
            if raw is _MISSING:
                if s.default is _MISSING:
                    raise RecordError(f"{cls.KIND} without {key}")
                continue
            kw[s.name] = _decode(s, raw, v1)
        return cls._build(d, kw, used)

    @classmethod
    def _build(cls, d: Mapping[str, Any], kw: dict[str, Any], used: set[str]) -> Record:
        t = d.get("t_ns", 0)
        if not isinstance(t, int) or isinstance(t, bool):
            raise RecordError(f"t_ns {t!r} is not an integer")
        seq = d.get("seq", 0)
        src = d.get("source")
        used.add("source")
        extra = {k: v for k, v in d.items() if k not in used}
        return cls(t_ns=t, seq=seq if isinstance(seq, int) else 0, source=str(src) if src else "",
                   extra=extra, **kw)


def json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.decode("ascii", "replace")
    raise TypeError(f"journal: cannot record a {type(obj).__name__}")


def _decode(s: _Spec, raw: Any, v1: bool) -> Any:
    c = s.code
    if c in (_OPT_INT, _OPT_SIDE) and (raw is None or raw == "None"):
        return None
    if c in (_INT, _OPT_INT):
        return to_e8(raw) if v1 and s.money_text else _int(raw)
    if c == _STR:
        return "" if raw is None else str(raw)
    if c == _BOOL:
        return bool(raw)
    return parse_side(raw)


def _kind(cls: type[Record]) -> type[Record]:
    """Register a record class: its kind, and the codec's view of its fields."""
    hints = typing.get_type_hints(cls)
    specs = []
    base = {f.name for f in dataclasses.fields(Record)}
    for f in dataclasses.fields(cls):
        if f.name in base:
            continue
        v1 = cls.V1.get(f.name, f.name)
        default = f.default if f.default is not _MISSING else _MISSING
        code = _CODES[hints[f.name]]
        specs.append(_Spec(f.name, v1, code, default,
                           money_text=code in (_INT, _OPT_INT) and f.name.endswith("_e8")
                           and not v1.endswith("_e8")))
    cls._specs = tuple(specs)
    RECORDS[cls.KIND] = cls
    return cls


RECORDS: dict[str, type[Record]] = {}


def make(kind: str, t_ns: int, source: str = "", **fields: Any) -> Record:
    """A record of ``kind`` from fields named as in the current format; any other field goes to
    ``extra`` (a writer that records varying fields, such as the supervisor's notes)."""
    cls = RECORDS.get(kind)
    if cls is None:
        raise ValueError(f"journal: unknown record kind {kind!r}")
    names = {s.name for s in cls._specs}
    known = {k: v for k, v in fields.items() if k in names}
    extra = {k: v for k, v in fields.items() if k not in names}
    return cls(t_ns=t_ns, source=source, extra=extra, **known)


def from_dict(d: object) -> Record:
    """The record of one decoded JSON object of either format."""
    if not isinstance(d, dict):
        raise RecordError("not a JSON object")
    kind = d.get("kind")
    cls = RECORDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise RecordError(f"unknown record kind {d.get('kind')!r}")
    return cls._from(d, v1="v" not in d)


# -- orders and TrueX's answers -------------------------------------------------------------------------
@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Order(Record):
    """A NewOrderSingle sent."""
    KIND = "order"
    cl_ord_id: str
    side: Side
    price_ticks: int
    qty_lots: int


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel(Record):
    """An OrderCancelRequest sent."""
    KIND = "cancel"
    cl_ord_id: str
    orig_cl_ord_id: str
    side: Side | None = None


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Replace(Record):
    """An OrderCancelReplaceRequest sent: ``cl_ord_id`` is the new id of ``orig_cl_ord_id``."""
    KIND = "replace"
    cl_ord_id: str
    orig_cl_ord_id: str
    side: Side
    price_ticks: int
    qty_lots: int


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Ack(Record):
    KIND = "ack"
    cl_ord_id: str
    order_id: str = ""


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Reject(Record):
    """An order rejected (ExecutionReport 8), or a BusinessMessageReject (``business_reason`` set)."""
    KIND = "reject"
    cl_ord_id: str = ""
    text: str = ""
    business_reason: int | None = None


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReject(Record):
    KIND = "cancel_reject"
    cl_ord_id: str = ""
    orig_cl_ord_id: str = ""
    reason: int | None = None
    text: str = ""
    ord_status: str = ""


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Canceled(Record):
    KIND = "canceled"
    cl_ord_id: str = ""
    orig_cl_ord_id: str = ""
    text: str = ""


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Replaced(Record):
    KIND = "replaced"
    cl_ord_id: str = ""
    orig_cl_ord_id: str = ""
    price_ticks: int = 0
    qty_lots: int = 0


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Fill(Record):
    """A TrueX fill booked (ExecID once; ``source`` ``rest`` when booked from REST at start)."""
    KIND = "fill"
    V1: ClassVar[Mapping[str, str]] = {"fee_e8": "fee"}
    cl_ord_id: str
    exec_id: str
    side: Side
    px_ticks: int
    qty_lots: int
    leaves_lots: int = 0
    liquidity: int = 0          # FIX 851: 1 added (maker), 2 removed (taker), 0 absent
    fee_e8: int | None = None   # the venue's fee, if it sent one
    match_id: str = ""
    order_id: str = ""


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class BadReport(Record):
    """A fill report the trading core refused as impossible (``problem``): never booked."""
    KIND = "bad_report"
    V1: ClassVar[Mapping[str, str]] = {"fee_e8": "fee"}
    cl_ord_id: str = ""
    exec_id: str = ""
    side: Side | None = None
    px_ticks: int | None = None
    qty_lots: int | None = None
    leaves_lots: int | None = None
    liquidity: int = 0
    fee_e8: int | None = None
    match_id: str = ""
    order_id: str = ""
    problem: str = ""


# -- hedges on Kraken -------------------------------------------------------------------------------------
@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Hedge(Record):
    """A hedge order, journalled before it is sent (``price_e8`` 0: a market order)."""
    KIND = "hedge"
    V1_SIDE = ("buy", "sell")
    cl_ord_id: str
    hedge_id: int
    side: Side
    volume_e8: int
    price_e8: int = 0


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class HedgeAck(Record):
    """Kraken took a hedge order (``txid``), a cancel was sent, or the order ended (``final``)."""
    KIND = "hedge_ack"
    cl_ord_id: str = ""
    txid: str = ""
    adopted: bool = False
    final: bool = False
    status: str = ""
    detail: str = ""


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class HedgeReject(Record):
    KIND = "hedge_reject"
    cl_ord_id: str = ""
    reason: str = ""


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class HedgeFill(Record):
    """A hedge fill in whole TrueX lots, as published on the ring: the hedger journals it before it
    publishes (with its order's cumulative state, from which a restart carries on), the quoter when it
    books it (``source`` ``quoter``). ``qty_lots`` 0: a sub-lot slice, carried, never published.

    First-format lines: the quoter's had ``qty_lots``, ``price`` and ``fee`` as text; the hedger's had
    ``lots``, ``price``, ``cost`` and the order's cumulative ``fee`` as text and no side (its order's).
    Read from those, ``side`` and ``fee_e8`` of a hedger's line are None: the fold
    (:class:`fastmm.journal.replay.HedgerFold`) fills them in from the order and the previous fill.
    """
    KIND = "hedge_fill"
    V1_SIDE = ("BUY", "SELL")
    exec_id: str
    side: Side | None
    qty_lots: int
    price_e8: int
    fee_e8: int | None = None        # this fill's fee
    cl_ord_id: str = ""
    vol_exec_e8: int | None = None   # the hedge order's cumulative execution after this fill (hedger)
    cost_e8: int | None = None
    fee_cum_e8: int | None = None
    carry_e8: int | None = None      # executed volume below one lot, not yet published
    recovered: bool = False          # booked by the quoter's start-up recovery

    @classmethod
    def _from(cls, d: Mapping[str, Any], v1: bool) -> Record:
        if not v1:
            return super(HedgeFill, cls)._from(d, v1)
        try:
            exec_id = str(d["exec_id"])
            price = to_e8(d["price"])
            if "vol_exec_e8" in d:        # the hedger's
                kw = {"qty_lots": _int(d["lots"]), "vol_exec_e8": _int(d["vol_exec_e8"]),
                      "cost_e8": to_e8(d["cost"]), "fee_cum_e8": to_e8(d["fee"]),
                      "carry_e8": _int(d["carry_e8"]), "fee_e8": None}
                side = parse_side(d["side"]) if d.get("side") is not None else None
            else:                          # the quoter's
                fee = d.get("fee", "0")
                kw = {"qty_lots": _int(d["qty_lots"]),
                      "fee_e8": None if fee in (None, "None") else to_e8(fee)}
                side = parse_side(d["side"])
        except KeyError as e:
            raise RecordError(f"hedge_fill without {e}") from None
        used = {*_HEAD, "exec_id", "price", "lots", "vol_exec_e8", "cost", "fee", "carry_e8", "qty_lots",
                "side", "cl_ord_id", "recovered"}
        return cls._build(d, {"exec_id": exec_id, "side": side, "price_e8": price,
                              "cl_ord_id": str(d.get("cl_ord_id") or ""),
                              "recovered": bool(d.get("recovered", False)), **kw}, used)

    def legacy(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "t_ns": self.t_ns, "kind": self.KIND}
        if self.vol_exec_e8 is not None:
            out |= {"cl_ord_id": self.cl_ord_id, "exec_id": self.exec_id, "lots": self.qty_lots,
                    "vol_exec_e8": self.vol_exec_e8, "cost": format_e8(self.cost_e8 or 0),
                    "fee": format_e8(self.fee_cum_e8 or 0), "carry_e8": self.carry_e8 or 0,
                    "price": format_e8(self.price_e8)}
            if self.side is not None:
                out["side"] = self.side.name
        else:
            out |= {"exec_id": self.exec_id, "side": self.side.name if self.side else None,
                    "qty_lots": self.qty_lots, "price": format_e8(self.price_e8),
                    "fee": format_e8(self.fee_e8 or 0)}
            if self.cl_ord_id:
                out["cl_ord_id"] = self.cl_ord_id
            if self.recovered:
                out["recovered"] = True
        if self.source:
            out["source"] = self.source
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out


# -- the engine's own events ----------------------------------------------------------------------------
@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Risk(Record):
    KIND = "risk"
    detail: str = ""


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Phase(Record):
    """A phase change (the supervisor's: ``phase``, ``previous``) or a quoter's phase note."""
    KIND = "phase"
    phase: str = ""
    previous: str = ""
    command: str = ""
    command_id: int | None = None
    detail: str = ""
    t_mono_ns: int | None = None


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Session(Record):
    """A FIX session event (``session`` ``oe``: order entry)."""
    KIND = "session"
    session: str = ""
    event: str = ""
    detail: str = ""
    next_sender: int | None = None
    next_target: int | None = None


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Recovery(Record):
    KIND = "recovery"
    detail: str = ""


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Note(Record):
    KIND = "note"
    detail: str = ""
    exec_id: str = ""
    poss_dup: bool = False


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Mark(Record):
    """The quoter's fair mid, about once a second: what a report marks PnL to."""
    KIND = "mark"
    fair_mid_e8: int


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Reconcile(Record):
    """The start-up reconciliation with TrueX REST: its counts (and ``error``, when it failed) are in
    ``extra``, as the reconciliation reported them."""
    KIND = "reconcile"


@_kind
@dataclass(frozen=True, slots=True, kw_only=True)
class Pnl(Record):
    KIND = "pnl"
    position_lots: int
    realized_e8: int
    unrealized_e8: int
    fees_e8: int
    fair_mid_e8: int = 0


KINDS = frozenset(RECORDS)


def line_of(seq: int, tail: bytes) -> bytes:
    """A record's line from its ``seq`` and the rest of it (everything after the head's seq, ``,"t_ns":``
    on): how :meth:`Record.to_line` lays a line out, for a writer that encoded the rest without a Record
    object (fastmm.procs.order_journal.order_entry, on the quoter's price path)."""
    return _LINE_HEAD % (seq, tail)
