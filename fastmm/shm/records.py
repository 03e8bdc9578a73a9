"""Every record that crosses shared memory, declared once, little-endian, 8-byte aligned.

Prices and sizes of reference books are integers of 1e-8 (:mod:`fastmm.units`): exact for any
decimal text a venue sends with up to 8 places, comparable across venues, and cheap to compare.
TrueX order quantities stay in lots of the instrument; money is in 1e-8 PYUSD.

Every record carries ``seq`` (the channel's publish count) and the nanosecond timestamps of its path
(``t_recv``: frame read from the socket, ``t_pub``: record published; see DESIGN.md, Latency), and ends
with a ``checksum`` that :func:`seal` fills and :func:`verify` checks, for chaos tests and operators'
debugging (the hot path does not have to pay for it).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

# A record layout (a structured dtype) and an array of such records (a channel's slots, its tx/rx).
RecordDtype: TypeAlias = "np.dtype[np.void]"
Records: TypeAlias = "npt.NDArray[np.void]"

BOOK_LEVELS = 5

# Venue codes used in records.
VENUE_TRUEX = 1
VENUE_COINBASE = 2
VENUE_KRAKEN = 3
VENUE_NAMES = {VENUE_TRUEX: "truex", VENUE_COINBASE: "coinbase", VENUE_KRAKEN: "kraken"}

# Book flags.
BOOK_STALE = 1 << 0       # the feed lost its source (disconnect, silence, gap) and has no valid book
BOOK_CROSSED = 1 << 1     # best bid >= best ask as the venue sent it; the quoter must not trust it


def _dtype(fields: list[tuple[Any, ...]]) -> RecordDtype:
    dt = np.dtype(fields)
    if dt.itemsize % 8:
        raise TypeError(f"record {fields[0]} not a multiple of 8 bytes: {dt.itemsize}")
    if dt.names is None or dt.names[-1] != "checksum":
        raise TypeError("a record ends with its checksum")
    return dt


TOP_OF_BOOK = _dtype([
    ("seq", "<u8"),
    ("t_venue", "<i8"),        # venue's own timestamp, ns since epoch (0 when the venue sends none)
    ("t_recv", "<i8"),
    ("t_pub", "<i8"),
    ("venue_seq", "<u8"),      # the venue's sequence number of the last applied message
    ("venue", "<u4"),
    ("flags", "<u4"),
    ("n_bids", "<u4"),
    ("n_asks", "<u4"),
    ("bid_px", "<i8", (BOOK_LEVELS,)),
    ("bid_sz", "<i8", (BOOK_LEVELS,)),
    ("ask_px", "<i8", (BOOK_LEVELS,)),
    ("ask_sz", "<i8", (BOOK_LEVELS,)),
    ("checksum", "<u8"),
])

POSITION = _dtype([
    ("seq", "<u8"),
    ("t_pub", "<i8"),
    ("position_lots", "<i8"),      # net BTC position in TrueX lots, TrueX fills and hedge fills together
    ("avg_entry_e8", "<i8"),       # VWAP entry price, 1e-8 PYUSD
    ("realized_e8", "<i8"),        # money, 1e-8 PYUSD
    ("unrealized_e8", "<i8"),
    ("fees_e8", "<i8"),
    ("fair_mid_e8", "<i8"),
    ("truex_fills", "<u8"),
    ("hedge_fills", "<u8"),
    ("hedge_pending_lots", "<i8"),  # hedge orders sent and not yet filled or cancelled (signed)
    ("risk_tripped", "<u4"),
    ("live_orders", "<u4"),        # our orders working on TrueX
    ("quote_bid_ticks", "<i8"),    # our best bid / ask on TrueX (0 = none)
    ("quote_ask_ticks", "<i8"),
    ("orders_sent", "<u8"),
    ("checksum", "<u8"),
])

FILL = _dtype([
    ("seq", "<u8"),
    ("t_venue", "<i8"),
    ("t_recv", "<i8"),
    ("t_pub", "<i8"),
    ("venue", "<u4"),
    ("side", "<i4"),           # +1 we bought, -1 we sold
    ("px_e8", "<i8"),
    ("qty_e8", "<i8"),         # BTC in 1e-8
    ("fee_e8", "<i8"),         # money in 1e-8 of the quote currency; negative = rebate
    ("maker", "<u4"),
    ("_pad", "<u4"),
    ("order_id", "S40"),       # venue order id / ClOrdID, ASCII
    ("exec_id", "S40"),        # unique per fill: replays are detected by it
    ("checksum", "<u8"),
])

# A reference venue's market trade (an event ring per feed, ``trades.<venue>``): the edge model's signed
# taker flow and the intensity fit's trade prices, the same inputs the backtest gives the core. A signal,
# not money: a feed drops a trade rather than wait for room (fastmm.procs.trade_channel).
TAKER_BUY = 1      # the buyer took liquidity (fastmm.backtest.market's TRADE rows, TradingCore.on_trade)
TAKER_SELL = 2

TRADE = _dtype([
    ("seq", "<u8"),
    ("t_venue", "<i8"),        # the venue's trade time, ns since epoch
    ("t_recv", "<i8"),
    ("t_pub", "<i8"),
    ("venue", "<u4"),
    ("taker_side", "<u4"),     # TAKER_BUY or TAKER_SELL
    ("price_e8", "<i8"),
    ("size_e8", "<i8"),
    ("checksum", "<u8"),
])

# The quoter's per-stage latency (fastmm.latency), published about once a second from its housekeeping
# timer, never per tick. Stage i of every array is LATENCY_STAGES[i]. ``run_*``: since the quoter started
# (a restart starts over, see ``t_start``); ``win_*``: the recent window of ``window_ns`` ending at
# ``t_pub``. Percentiles are HDR (3 significant digits), in nanoseconds; 0 with a count of 0.
LATENCY_STAGES = ("recv_to_pub", "pub_to_wake", "wake_to_decide", "decide_to_sent")
_NS = len(LATENCY_STAGES)

STAGE_LATENCY = _dtype([
    ("seq", "<u8"),
    ("t_pub", "<i8"),          # CLOCK_MONOTONIC ns of this snapshot
    ("t_start", "<i8"),        # CLOCK_MONOTONIC ns when the quoter's histograms started
    ("window_ns", "<i8"),      # what the win_* fields cover: 10 to 20 s (less only in the first 10 s)
    ("run_count", "<u8", (_NS,)),
    ("run_p50_ns", "<i8", (_NS,)),
    ("run_p99_ns", "<i8", (_NS,)),
    ("run_p999_ns", "<i8", (_NS,)),
    ("run_max_ns", "<i8", (_NS,)),
    ("win_count", "<u8", (_NS,)),
    ("win_p50_ns", "<i8", (_NS,)),
    ("win_p99_ns", "<i8", (_NS,)),
    ("win_p999_ns", "<i8", (_NS,)),
    ("win_max_ns", "<i8", (_NS,)),
    ("checksum", "<u8"),
])

# Process state bits in HEALTH.state: what the supervisor's lifecycle needs to know about a process.
STATE_CONNECTED = 1 << 0     # its venue connection is up
STATE_FRESH = 1 << 1         # a feed: its book is valid and recent
STATE_LOGGED_ON = 1 << 2     # a FIX session is logged on (quoter: order entry; feed-truex-md: market data)
STATE_SUBSCRIBED = 1 << 3    # market data subscribed and a snapshot applied
STATE_QUOTING = 1 << 4       # the quoter has live quotes or is placing them
STATE_FLAT = 1 << 5          # no live orders (quoter) / no hedge in flight (hedger)
STATE_RISK_TRIPPED = 1 << 6  # the kill switch is tripped in this process
STATE_JOURNAL_FAILED = 1 << 7  # its journal cannot write (records held in memory; ops/disk-full.md)

HEALTH = _dtype([
    ("seq", "<u8"),
    ("t_pub", "<i8"),          # the heartbeat: last time the process showed it was alive (CLOCK_MONOTONIC)
    ("pid", "<i8"),
    ("state", "<u4"),          # STATE_* bits
    ("restarts", "<u4"),       # written by the supervisor's view; the process copies what it is told
    ("acked", "<u8"),          # the id of the last supervisor command this process has carried out
    ("messages", "<u8"),       # messages handled, so an operator sees a feed that is alive but idle
    ("errors", "<u8"),
    ("checksum", "<u8"),
])

# Supervisor commands in CONTROL.command (names as in fastmm.procs.lifecycle.Command).
COMMANDS = ("none", "start_quoting", "pull_quotes", "cancel_all", "hedge_flat", "logout", "exit")
COMMAND_CODES = {name: code for code, name in enumerate(COMMANDS)}

CONTROL = _dtype([
    ("seq", "<u8"),
    ("t_pub", "<i8"),
    ("phase", "<u4"),          # fastmm.procs.lifecycle.Phase
    ("command", "<u4"),        # COMMAND_CODES
    ("command_id", "<u8"),     # increases with every command; processes ack it in HEALTH.acked
    ("reason", "S48"),
    ("checksum", "<u8"),
])

# The firm-wide view (fastmm.db.firm): written by the firm process about once a second, read by the quoter
# on its timer and by the hedger. Positions in 1e-8 of the base asset, summed over the other live instances
# of this instance's base asset (this one's own position is the quoter's, always current).
FIRM = _dtype([
    ("seq", "<u8"),
    ("t_pub", "<i8"),              # CLOCK_MONOTONIC of the last Redis round trip that succeeded or failed
    ("t_ok", "<i8"),               # CLOCK_MONOTONIC of the last one that succeeded (0: never)
    ("others_position_e8", "<i8"),
    ("others_total_e8", "<i8"),    # their PnL, 1e-8 PYUSD
    ("own_position_e8", "<i8"),    # what this instance published
    ("others_live", "<u4"),        # other live instances of the same base asset
    ("redis_up", "<u4"),           # 1: the last round trip succeeded
    ("errors", "<u8"),
    ("checksum", "<u8"),
])

ALL_RECORDS: dict[str, RecordDtype] = {
    "top_of_book": TOP_OF_BOOK,
    "position": POSITION,
    "fill": FILL,
    "trade": TRADE,
    "health": HEALTH,
    "control": CONTROL,
    "stage_latency": STAGE_LATENCY,
    "firm": FIRM,
}


def dtype_fingerprint(dt: RecordDtype) -> int:
    """A 64-bit fingerprint of a dtype's layout, stored in each segment header so that a process built
    from a different version of this module cannot attach and misread the bytes."""
    import zlib

    text = repr(dt.descr).encode()
    return (zlib.crc32(text) << 32) | zlib.adler32(text)


def _words(rec: np.void | Records) -> npt.NDArray[np.uint64]:
    raw = np.asarray(rec).reshape(1).view(np.uint64)
    return raw[1:-1]


def checksum_of(rec: np.void | Records) -> int:
    """A position-weighted sum of the record's 64-bit words: all but ``seq`` (the channel stamps it
    when it publishes) and the checksum itself."""
    words = _words(rec)
    weights = np.arange(1, words.size + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return int((words * weights).sum(dtype=np.uint64) ^ np.uint64(0x9E3779B97F4A7C15))


def seal(rec: Records) -> None:
    """Fill in the checksum of a one-record array (or a record view) in place."""
    rec["checksum"] = checksum_of(rec)


def verify(rec: np.void | Records) -> bool:
    return int(np.asarray(rec).reshape(1)["checksum"][0]) == checksum_of(rec)
