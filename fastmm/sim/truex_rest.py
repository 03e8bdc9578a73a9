"""TrueX's REST v1 endpoints over the simulated exchange (venue facts section 6), with the same signature
check: ``x-truex-auth-token`` must be the API key id, ``x-truex-auth-userid`` set, the timestamp within
``max_skew_s`` of now, and ``x-truex-auth-signature`` = base64(HMAC-SHA256(secret, timestamp + METHOD +
path without query + body)). Anything else is HTTP 401 with a JSON ``message``.

Served: ``GET/PATCH /client``, ``GET /order/active``, ``GET /order/status/{ref}``, ``GET /order/trade``
and ``DELETE /order/{ref}`` for the simulator's one client session (``client_comp_id``).
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from fastmm.sim.truex_matching import ExecReport, ExecType, OrdStatus
from fastmm.sim.truex_server import TruexSimServer
from fastmm.units import BPS
from fastmm.venues.truex.auth import rest_signature
from fastmm.venues.truex.rest_codec import API_PREFIX

_STATUS = {OrdStatus.NEW: "ACTIVE", OrdStatus.PARTIALLY_FILLED: "ACTIVE", OrdStatus.FILLED: "FILLED",
           OrdStatus.CANCELED: "CANCELED", OrdStatus.REJECTED: "REJECTED", OrdStatus.EXPIRED: "CANCELED"}


class TruexRestSim:
    """``port = await TruexRestSim(sim).start(host, port)``; ``await stop()``."""

    def __init__(self, sim: TruexSimServer, *, max_skew_s: int = 30,
                 wall_s: Callable[[], float] = time.time) -> None:
        self.sim = sim
        self.max_skew_s = max_skew_s
        self._wall_s = wall_s
        self.requests: list[tuple[str, str, float]] = []   # (method, path, wall time) of signed requests
        self.auth_failures = 0
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        app = web.Application(middlewares=[self._auth])
        p = API_PREFIX
        app.router.add_get(f"{p}/client", self._get_client)
        app.router.add_patch(f"{p}/client", self._patch_client)
        app.router.add_get(f"{p}/order/active", self._active)
        app.router.add_get(f"{p}/order/trade", self._trades)
        app.router.add_get(f"{p}/order/status/{{ref}}", self._status)
        app.router.add_delete(f"{p}/order/{{ref}}", self._delete)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- signature ---------------------------------------------------------------------------------
    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        s = self.sim.settings
        h = request.headers
        body = await request.text()
        ts = h.get("x-truex-auth-timestamp", "")
        why = ""
        if h.get("x-truex-auth-token") != s.api_key_id:
            why = "Invalid API key"
        elif not h.get("x-truex-auth-userid"):
            why = "Missing user id"
        elif not ts.isdigit() or abs(int(ts) - self._wall_s()) > self.max_skew_s:
            why = "Invalid timestamp"
        elif not hmac.compare_digest(h.get("x-truex-auth-signature", ""),
                                     rest_signature(s.api_secret, ts, request.method, request.path, body)):
            why = "Invalid signature"
        if why:
            self.auth_failures += 1
            return web.json_response({"message": why}, status=401)
        self.requests.append((request.method, request.path, self._wall_s()))
        return await handler(request)

    # -- records -----------------------------------------------------------------------------------
    def _order_record(self, ev: ExecReport, status: str | None = None) -> dict[str, Any]:
        inst = self.sim.exchange.instrument
        return {"id": ev.order_id, "external_id": ev.cl_ord_id, "status": status or _STATUS[ev.ord_status],
                "order_info": {"client_id": self.sim.exchange.engine.client_id_of(ev.owner),
                               "instrument_id": inst.symbol, "side": "BUY" if ev.side == "1" else "SELL",
                               "type": "LIMIT" if ev.price else "MARKET", "qty": inst.qty_text(ev.qty),
                               "price": inst.price_text(ev.price) if ev.price else None, "tif": "GTC"},
                "leaves_qty": inst.qty_text(ev.leaves), "exeuted_qty": inst.qty_text(ev.cum)}

    def _live(self) -> list[dict[str, Any]]:
        ex = self.sim.exchange
        out = []
        for o in ex.engine.live_orders(self.sim.settings.client_comp_id):
            last = ex.order_state.get(o.order_id)
            if last is not None:
                rec = self._order_record(last, "ACTIVE")
                rec["external_id"] = o.last_cl_ord_id
                rec["order_info"]["qty"] = ex.instrument.qty_text(o.qty)
                rec["order_info"]["price"] = ex.instrument.price_text(o.price) if o.price else None
                rec["leaves_qty"] = ex.instrument.qty_text(o.leaves)
                out.append(rec)
        return out

    # -- handlers ------------------------------------------------------------------------------------
    async def _get_client(self, request: web.Request) -> web.Response:
        ex = self.sim.exchange
        return web.json_response({"id": ex.engine.rules.client_id,
                                  "ref_client_id": self.sim.settings.client_comp_id,
                                  "cancel_on_disconnect": ex.cancel_on_disconnect})

    async def _patch_client(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.json_response({"message": "body is not JSON"}, status=400)
        v = body.get("cancel_on_disconnect") if isinstance(body, dict) else None
        if not isinstance(v, bool):
            return web.json_response({"message": "cancel_on_disconnect must be true or false"}, status=400)
        self.sim.exchange.cancel_on_disconnect = v
        return await self._get_client(request)

    async def _active(self, request: web.Request) -> web.Response:
        return web.json_response(self._live())

    async def _status(self, request: web.Request) -> web.Response:
        ref, kind = request.match_info["ref"], request.query.get("id_type", "exchange")
        for rec in self._live():
            if (rec["id"] if kind == "exchange" else rec["external_id"]) == ref:
                return web.json_response(rec)
        for ev in self.sim.exchange.order_state.values():
            if (ev.order_id if kind == "exchange" else ev.cl_ord_id) == ref:
                return web.json_response(self._order_record(ev))
        return web.json_response({"message": "Order not found"}, status=404)

    async def _trades(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            since, size = int(q.get("timestamp", "0")), int(q.get("size", "100"))
            skip = int(q.get("skip", "0"))
        except ValueError:
            return web.json_response({"message": "timestamp, size and skip must be integers"}, status=400)
        if not 1 <= size <= 100 or skip < 0:
            return web.json_response({"message": "size must be 1..100"}, status=400)
        ex = self.sim.exchange
        rules = ex.engine.rules
        owner = self.sim.settings.client_comp_id
        mine = [(t, ev) for t, ev in ex.trade_log
                if ev.owner == owner and ev.exec_type == ExecType.TRADE and t >= since]
        page = mine[skip:skip + size]
        inst = ex.instrument
        return web.json_response([
            {"order_id": ev.order_id, "trade_price": inst.price_text(ev.last_px),
             "trade_qty": inst.qty_text(ev.last_qty),
             "trade_fee_rate": str((rules.maker_fee_bps if ev.liquidity == 1 else rules.taker_fee_bps)
                                   / Decimal(BPS)),
             "liq_flag": "MAKER" if ev.liquidity == 1 else "TAKER", "match_id": ev.exec_id,
             "timestamp": str(t)}
            for t, ev in page])

    async def _delete(self, request: web.Request) -> web.Response:
        ref, kind = request.match_info["ref"], request.query.get("id_type", "exchange")
        ex = self.sim.exchange
        order_id = ref
        if kind == "client":
            order_id = next((o.order_id for o in ex.engine.live_orders(self.sim.settings.client_comp_id)
                             if o.last_cl_ord_id == ref), "")
        if not order_id or not ex.cancel_by_id(order_id, self.sim.clock()):
            return web.json_response({"message": "Order not found or not active"}, status=404)
        self.sim.flush()
        return web.json_response({"id": order_id, "status": "CANCEL_PENDING"})
