"""hedger: hedges the quoter's accumulated position on Kraken and publishes every hedge fill.

Reads ``position`` (written by the quoter), decides with :class:`fastmm.core.hedge.HedgePlanner`, sends
orders through :class:`fastmm.venues.kraken.rest.KrakenRest`, follows each order by polling it, and
publishes its fills on the lossless ``hedge.fills`` ring, in whole TrueX lots (a sub-lot remainder is
carried to the next fill of the same hedge: :class:`fastmm.core.hedge_fills.HedgeFills` decides). The loop
never waits on the ring: a fill the ring has no room for waits in order in :attr:`Hedger.outbox` and goes
out on a later turn (it is in the journal already).

Its own journal (``hedger.jsonl``) makes a restart safe: each hedge order's ``cl_ord_id`` is written
before the order is sent, and each fill before it is published. On restart the hedger finds every
unfinished hedge on Kraken by its ``cl_ord_id`` and follows it to the end instead of starting another,
and fill ids are derived from the order's cumulative executed volume, so a fill seen twice has the same
id and the quoter counts it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from typing import Any

from fastmm.config import Config
from fastmm.core.hedge import (
    CancelHedge,
    HedgePhase,
    HedgePlanner,
    HedgeRisk,
    PlaceLimit,
    PlaceMarket,
)
from fastmm.core.hedge_fills import Refused
from fastmm.instrument import Instrument
from fastmm.journal import Journal, JournalError
from fastmm.journal.records import HedgeAck, HedgeReject, Risk
from fastmm.journal.replay import HedgerFold
from fastmm.procs.book_channel import read_top
from fastmm.procs.child import SupervisorLink, serve_supervisor, stop_on_signals
from fastmm.procs.firm_gate import FirmGate
from fastmm.procs.hedge_orders import CLOSED, HedgeOrders, fill_ring_record, funds_shortfall
from fastmm.procs.recovery import HEDGER_JOURNAL
from fastmm.shm import EventRing, LatestValue, SegmentMissing
from fastmm.shm.records import (
    FILL,
    POSITION,
    STATE_CONNECTED,
    STATE_FLAT,
    STATE_JOURNAL_FAILED,
    STATE_RISK_TRIPPED,
    TOP_OF_BOOK,
)
from fastmm.units import fixed_e8, parse_e8
from fastmm.venues.kraken.rest import KrakenRest, OutcomeUnknown
from fastmm.venues.kraken.rest_codec import InsufficientFunds, KrakenError, NonceStore, PairInfo

log = logging.getLogger("fastmm.hedger")

POLL_S = 0.25
WIND_DOWN_S = 4.0       # the stop's logout step allows 5 s: a market order ends well inside that
FUNDS_BACKOFF_S = 60.0
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})   # the disk, not the network


class Hedger:
    """The hedger's shell: Kraken REST calls, the journal, the ring; the decisions are in the cores
    (:class:`HedgePlanner` what to send, :class:`HedgeFills` what an execution means for the quoter)."""

    def __init__(self, cfg: Config, rest: KrakenRest, ring: EventRing, journal: Journal, past: HedgerFold,
                 pair: PairInfo) -> None:
        self.cfg = cfg
        self.rest = rest
        self.ring = ring
        self.journal = journal
        self.pair = pair
        h = cfg.hedge
        instrument = Instrument.from_config(cfg.instrument)
        lot = self.lot_e8 = instrument.lot_e8
        self.orders = HedgeOrders(lot, past)     # every order's state, and the fills for the ring
        self.fills = self.orders.fills
        self.outbox = self.orders.outbox         # fills decided and journalled the ring had no room for
        self.planner = HedgePlanner(
            threshold_lots=instrument.qty_floor_lots(cfg.inventory.hedge_threshold_btc), lot_e8=lot,
            min_e8=max(parse_e8(str(h.min_hedge_btc)), pair.ordermin_e8),
            max_e8=parse_e8(str(h.max_hedge_btc)) // lot * lot,
            limit_timeout_ns=int(h.limit_timeout_s * 1e9), edge_bps=int(h.limit_edge_bps),
            price_tick_e8=pair.tick_e8, volume_step_e8=lot, next_id=past.next_id,
            risk=HedgeRisk.from_config(cfg))
        self.funds_blocked_until = 0.0
        self.alert = ""
        self.wound_down = False
        self.halted = False      # an impossible report: no new hedge this run (the alert says why)

    @property
    def fills_published(self) -> int:
        """Fills decided for the quoter (on the ring, or waiting in the outbox): what it must book."""
        return self.fills.count

    def flush(self) -> int:
        """Publish what waits in the outbox, in order, as far as the ring has room; never waits.
        Returns how many are still waiting."""
        ring = self.ring
        tx = ring.tx[0]
        while self.outbox:
            fill_ring_record(tx, self.outbox[0], self.lot_e8, time.monotonic_ns())
            if not ring.push():
                break
            self.outbox.popleft()
        return len(self.outbox)

    # -- restart and stop ----------------------------------------------------------------------------
    async def recover(self, max_wait_s: float = 30.0) -> None:
        """Finish every hedge order the journal says may still be live before hedging again: an open
        one is canceled (its purpose may be stale after a restart), and whatever it executed is
        published, once. The planner then starts from the position the quoter publishes."""
        await self._settle(max_wait_s, let_market_finish=False)

    async def wind_down(self, max_wait_s: float = WIND_DOWN_S) -> bool:
        """The end of hedging (the stop's ``logout``, or the process exiting for any reason): no new
        order; a working limit order is canceled, a market order is followed to its end (it was sent to
        hedge a position that is real), and what they executed is journalled and published. False
        when an order's end was not seen in time: the journal still lists it, so the next start finds
        it on Kraken and publishes its fills instead of hedging again."""
        self.wound_down = True
        try:
            await self._settle(max_wait_s, let_market_finish=True)
        except (OutcomeUnknown, KrakenError) as e:
            log.error("hedger: stopping with a hedge order not seen to end: %s (the next start follows it)",
                      e)
            return False
        finally:
            self.planner.hedge = None
        return True

    async def _settle(self, max_wait_s: float, *, let_market_finish: bool) -> None:
        for cl, rec in list(self.orders.open_orders.items()):
            found = await self.rest.find_order(cl)
            if found is None:
                log.warning("hedger: journal has hedge order %s that Kraken never took; nothing to follow",
                            cl)
                self._final(cl, "never placed")
                continue
            txid, info = found
            log.warning("hedger: %s: hedge order %s (%s) is %s", "winding down" if let_market_finish
                        else "left by the previous run", cl, txid, info.get("status"))
            self.orders.found(cl, txid)
            await self._absorb(cl, info)
            deadline = time.monotonic() + max_wait_s
            market = rec.price_e8 == 0
            while info.get("status") not in CLOSED:
                if not (market and let_market_finish):
                    with contextlib.suppress(KrakenError):
                        await self.rest.private("CancelOrder", {"txid": txid},
                                                order_age_s=(time.time_ns() - rec.t_ns) / 1e9)
                await asyncio.sleep(POLL_S)
                info = (await self.rest.private("QueryOrders", {"txid": txid, "trades": "true"}))[txid]
                await self._absorb(cl, info)
                if time.monotonic() > deadline:
                    raise OutcomeUnknown(f"hedge order {cl} ({txid}) still open after {max_wait_s:g} s")
            self._final(cl, info.get("status", "closed"))

    # -- one step ----------------------------------------------------------------------------------
    async def step(self, position_lots: int, fills_applied: int, bid_e8: int, ask_e8: int) -> None:
        now = time.monotonic_ns()
        h = self.planner.hedge
        if h is not None:
            await self._follow(h.limit_cl, h.limit_txid, "limit")
            if h.market_sent:
                await self._follow(h.market_cl, h.market_txid, "market")
            if h.phase == HedgePhase.CONFIRM:
                self.planner.confirm_after(self.fills_published)
        if self.planner.hedge is None and (self.halted or time.monotonic() < self.funds_blocked_until):
            return
        action = self.planner.decide(position_lots, fills_applied, self.fills_published, bid_e8, ask_e8, now)
        if action is None:
            return
        if isinstance(action, PlaceLimit | PlaceMarket):
            await self._place(action)
        elif isinstance(action, CancelHedge):
            with contextlib.suppress(KrakenError):
                await self.rest.private("CancelOrder", {"txid": action.txid}, order_age_s=action.age_s)
            self.journal.write(HedgeAck(t_ns=time.time_ns(), txid=action.txid, detail="cancel sent"))

    async def _place(self, action: PlaceLimit | PlaceMarket) -> None:
        h = self.planner.hedge
        assert h is not None
        price = action.price_e8 if isinstance(action, PlaceLimit) else 0
        if not await self._funds_ok(action.side, action.volume_e8, price):
            self.planner.hedge = None      # not placed: the planner may try again after the backoff
            return
        params = self.pair.order_params(action.side, action.volume_e8, price)
        self.journal.write(self.orders.sending(action.cl_ord_id, h.hedge_id, action.side, action.volume_e8,
                                               price, time.time_ns()))
        try:
            placed = await self.rest.add_order(dict(params), action.cl_ord_id)
        except OutcomeUnknown as e:
            log.error("hedger: %s; will look for it again before anything else", e)
            self._raise_alert(f"hedge order {action.cl_ord_id} outcome unknown")
            return
        except KrakenError as e:
            log.error("hedger: hedge order %s rejected: %s", action.cl_ord_id, e)
            self.journal.write(HedgeReject(t_ns=time.time_ns(), cl_ord_id=action.cl_ord_id, reason=str(e)))
            if isinstance(e, InsufficientFunds):
                self._funds_alert(f"Kraken refused the hedge: {e}")
            self._final(action.cl_ord_id, "rejected")
            if isinstance(action, PlaceLimit):
                h.limit_closed = True
            else:
                h.market_closed = True
            return
        if isinstance(action, PlaceLimit):
            h.limit_txid = placed.txid
        else:
            h.market_txid = placed.txid
        self.journal.write(self.orders.placed(action.cl_ord_id, placed.txid, bool(placed.adopted),
                                              time.time_ns()))
        log.info("hedger: %s %s %s placed as %s", action.side, fixed_e8(action.volume_e8, 8),
                 "limit " + fixed_e8(price, 1) if price else "market", placed.txid)

    async def _funds_ok(self, side: str, volume_e8: int, price_e8: int) -> bool:
        try:
            bal = await self.rest.balance()
        except KrakenError as e:
            log.error("hedger: balance check failed: %s", e)
            return False
        if side != "sell" and not price_e8:
            return True   # market buy: Kraken itself checks funds; the answer is handled as a reject
        why = funds_shortfall(side, volume_e8, price_e8, bal)
        if why is None:
            self.alert = ""
            return True
        self._funds_alert(why)
        return False

    def _funds_alert(self, text: str) -> None:
        self.funds_blocked_until = time.monotonic() + FUNDS_BACKOFF_S
        self._raise_alert(text)

    def _raise_alert(self, text: str) -> None:
        if self.alert != text:
            log.error("hedger: ALERT: %s", text)
            self.journal.write(Risk(t_ns=time.time_ns(), source="hedger", detail=text))
        self.alert = text

    async def _follow(self, cl: str, txid: str, which: str) -> None:
        h = self.planner.hedge
        if h is None or not txid:
            return
        if (which == "limit" and h.limit_closed) or (which == "market" and h.market_closed):
            return
        try:
            info = (await self.rest.private("QueryOrders", {"txid": txid, "trades": "true"}))[txid]
        except (KrakenError, KeyError) as e:
            log.warning("hedger: cannot query %s: %s", txid, e)
            return
        await self._absorb(cl, info)
        filled = parse_e8(str(info.get("vol_exec", "0")))
        if which == "limit":
            h.limit_filled_e8 = filled
        else:
            h.market_filled_e8 = filled
        if info.get("status") in CLOSED:
            if which == "limit":
                h.limit_closed = True
            else:
                h.market_closed = True
            self._final(cl, info["status"])

    async def _absorb(self, cl: str, info: dict[str, Any]) -> None:
        """Journal what the order executed since we last looked and queue its whole lots for the ring
        (:class:`HedgeFills` decides); an execution that cannot be true (vol_exec above the order's
        volume, absurd cost) is refused, never published: an alert, and the hedger stops hedging (its
        kill switch)."""
        out = self.orders.observe(cl, info, time.time_ns(), time.monotonic_ns())
        if isinstance(out, Refused):
            self.halted = True
            self._raise_alert(f"refused Kraken report for {cl}: {out.problem}")
            return
        if out is None:
            return
        rec, outgoing = out
        self.journal.write(rec)
        if info.get("status") in CLOSED and rec.carry_e8:
            log.warning("hedger: %s ended with %d e-8 BTC below one TrueX lot, not reported to the quoter",
                        cl, rec.carry_e8)
        if outgoing is not None:          # published only once its record is in the journal
            self.outbox.append(outgoing)
            self.flush()

    def _final(self, cl: str, status: str) -> None:
        rec = self.orders.final(cl, status, time.time_ns())
        if rec is not None:
            self.journal.write(rec)


async def run_supervised(cfg: Config, name: str = "hedger") -> int:
    stop = stop_on_signals()
    link = SupervisorLink(cfg, name)
    inst = cfg.instance.name
    position = LatestValue.attach(inst, "position", POSITION)
    firm_gate = FirmGate.attach(cfg) if cfg.hedge.firm_net else None
    ring = EventRing.attach(inst, "hedge.fills", FILL)
    ring.claim_producer()
    try:
        ref: LatestValue | None = LatestValue.attach(inst, "ref.kraken", TOP_OF_BOOK, wait="spin")
    except SegmentMissing:
        ref = None
    state = cfg.state_path
    journal = Journal(state / HEDGER_JOURNAL, cfg.journal.durability, cfg.journal.rotate_bytes)
    past = HedgerFold.read(state / HEDGER_JOURNAL)
    flatten_cmd: list[int] = []
    logout_cmd: list[int] = []

    def on_command(cid: int, what: str) -> bool:
        if what == "hedge_flat":
            flatten_cmd.append(cid)
            return False          # acknowledged once the position is flat (below the minimum hedge)
        if what == "logout":
            logout_cmd.append(cid)
            return False          # acknowledged once no hedge order is working (fills on the ring)
        return True

    sup = asyncio.create_task(serve_supervisor(link, stop, on_command=on_command))
    try:
        async with KrakenRest(cfg.kraken.rest_url, cfg.kraken.api_key, cfg.kraken.api_secret,
                              NonceStore(state / "kraken.nonce")) as rest:
            pair = PairInfo.from_asset_pairs(await rest.public("AssetPairs", {"pair": cfg.hedge.pair}),
                                             cfg.hedge.pair)
            hedger = Hedger(cfg, rest, ring, journal, past, pair)
            await hedger.recover()
            link.set_state(STATE_CONNECTED)
            try:
                await _hedge_loop(cfg, hedger, rest, pair, link, stop, position, ref, flatten_cmd, logout_cmd,
                                  firm_gate)
            finally:
                if not hedger.wound_down:          # SIGTERM, exit, the supervisor gone: nothing left working
                    try:
                        await hedger.wind_down()
                    except Exception:    # the journal still lists the order: the next start follows it
                        log.exception("hedger: wind-down failed")
                if hedger.flush():     # in the journal: the quoter's next start books them
                    log.error("hedger: exiting with %d hedge fill(s) the ring had no room for; the quoter's "
                              "next start books them from the hedger's journal", len(hedger.outbox))
    finally:
        stop.set()
        await sup
        journal.close()
        ring.close()
        position.close()
        if ref is not None:
            ref.close()
        link.close()
    return 0


async def _hedge_loop(cfg: Config, hedger: Hedger, rest: KrakenRest, pair: PairInfo, link: SupervisorLink,
                      stop: asyncio.Event, position: LatestValue, ref: LatestValue | None,
                      flatten_cmd: list[int], logout_cmd: list[int], firm_gate: FirmGate | None) -> None:
    """Hedge until stopped; after the stop's ``logout`` only wind down and acknowledge."""
    last_ticker = 0.0
    last_dead_man = 0.0
    dead_man_s = cfg.hedge.dead_man_timeout_s
    bid = ask = 0
    disk_error = ""     # a full disk: no more hedging this run
    while not stop.is_set():
        waiting = hedger.flush()      # fills the ring had no room for: in order, before anything else
        if logout_cmd:
            if not hedger.wound_down and not (disk_error or hedger.halted):
                await hedger.wind_down()
                waiting = hedger.flush()
            if not waiting:           # acknowledged once every fill is on the ring
                link.ack(logout_cmd[-1])
                logout_cmd.clear()
        if hedger.wound_down:
            link.set_state(STATE_FLAT, True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
            continue
        pos_lots = applied = 0
        if position.read() > 0:
            pos_lots = int(position.rx["position_lots"][0])
            applied = int(position.rx["hedge_fills"][0])
        if firm_gate is not None and not flatten_cmd:
            others = firm_gate.others_lots(time.monotonic_ns())
            if others is not None:      # hedge.firm_net: hedge the firm's net of this asset
                pos_lots += others
        top = read_top(ref) if ref is not None else None
        if top is not None and top.usable:
            bid, ask = top.bid_e8, top.ask_e8
        elif time.monotonic() - last_ticker > 1.0:
            last_ticker = time.monotonic()
            with contextlib.suppress(KrakenError):
                t = (await rest.public("Ticker", {"pair": pair.altname}))
                info = next(iter(t.values()))
                bid, ask = parse_e8(info["b"][0]), parse_e8(info["a"][0])
        if disk_error or hedger.halted:
            # nothing may be placed without its record on disk (nor signed without the nonce file),
            # nor after Kraken reported the impossible: the stop goes on without the hedge, says so,
            # and the dead-man switch, no longer renewed, has Kraken cancel what still works
            link.set_state((STATE_JOURNAL_FAILED if disk_error else 0) | STATE_RISK_TRIPPED, True)
            if flatten_cmd:
                log.error("hedger: ALERT: cannot hedge flat (%s); position %d lots left unhedged",
                          disk_error or hedger.alert, pos_lots)
                link.ack(flatten_cmd[-1])
                flatten_cmd.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
            continue
        try:
            if dead_man_s and time.monotonic() - last_dead_man >= dead_man_s / 2:
                # Kraken cancels every open order if this is not renewed in time: a hedger that
                # hangs or loses its network cannot leave a hedge working.
                try:
                    await rest.private("CancelAllOrdersAfter", {"timeout": dead_man_s})
                    last_dead_man = time.monotonic()
                except KrakenError as e:
                    log.error("hedger: dead-man switch not renewed: %s", e)
            if flatten_cmd:
                hedger.planner.flatten = True
            if cfg.hedge.enabled or flatten_cmd:
                await hedger.step(pos_lots, applied, bid, ask)
            flat = hedger.planner.hedge is None and hedger.planner.wanted_e8(pos_lots) is None
            link.set_state(STATE_FLAT, flat)
            link.set_state(STATE_RISK_TRIPPED, bool(hedger.alert))
            if flatten_cmd and flat and applied >= hedger.fills_published:
                link.ack(flatten_cmd[-1])
                flatten_cmd.clear()
                hedger.planner.flatten = False
            link.messages = hedger.fills_published
        except (JournalError, OSError) as e:
            if isinstance(e, OSError) and e.errno not in DISK_ERRNOS:
                raise
            disk_error = str(e)
            hedger.alert = f"disk: {e}"
            log.error("hedger: ALERT: %s: hedging stopped until a restart with free space "
                      "(ops/disk-full.md)", e)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)
