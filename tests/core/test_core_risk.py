"""RiskManager: every kill-switch trigger, risk-reducing-only while tripped, operator reset."""

from __future__ import annotations

from decimal import Decimal

from fastmm.config import InstrumentConfig, InventoryConfig, RiskConfig
from fastmm.core.money import to_units
from fastmm.core.risk import RiskManager, RiskReset, RiskTrip, TripReason
from fastmm.instrument import Instrument

INSTR = Instrument.from_config(InstrumentConfig())
MS = 1_000_000
S = 1000 * MS
T0 = 10**15


def risk(**kw: object) -> RiskManager:
    return RiskManager(RiskConfig(**kw), InventoryConfig(), INSTR)  # type: ignore[arg-type]


def tripped_by(r: RiskManager) -> TripReason | None:
    return r.trip_info.reason if r.trip_info else None


def test_drawdown_from_the_peak() -> None:
    r = risk(max_drawdown=Decimal(100))
    r.on_pnl(T0, to_units(50))
    r.on_pnl(T0, to_units(-50))  # 100 below the peak: not over
    assert not r.tripped
    r.on_pnl(T0, to_units("-50.00000001"))
    assert tripped_by(r) == TripReason.DRAWDOWN


def test_position_over_the_emergency_size() -> None:
    r = risk()
    r.on_position(T0, 60_000)
    assert not r.tripped
    r.on_position(T0, -60_001)
    assert tripped_by(r) == TripReason.POSITION


def test_order_rate_and_reject_rate_per_minute() -> None:
    r = risk(max_order_rate_per_min=10)
    for i in range(10):
        r.on_orders_sent(T0 + i * S)
    r.on_orders_sent(T0 + 60 * S)  # the first left the window
    assert not r.tripped
    r.on_orders_sent(T0 + 60 * S, 2)
    assert tripped_by(r) == TripReason.ORDER_RATE
    r2 = risk(max_reject_rate_per_min=2)
    for i in range(3):
        r2.on_reject(T0 + i * MS)
    assert tripped_by(r2) == TripReason.REJECT_RATE


def test_only_risk_reducing_orders_while_tripped_until_reset() -> None:
    r = risk()
    assert r.allows(1, 100, 0)
    r.trip(T0, TripReason.MANUAL, "operator")
    r.trip(T0, TripReason.DRAWDOWN)  # first reason stays
    assert tripped_by(r) == TripReason.MANUAL
    assert not r.allows(1, 100, 0)
    assert r.allows(2, 100, 500)  # sell while long
    assert not r.allows(2, 600, 500)  # more than the position
    assert not r.allows(2, 100, 500, open_same_side_lots=450)
    assert not r.allows(1, 100, 500)  # buy while long
    assert r.allows(1, 100, -500)
    ev = r.events()
    assert len(ev) == 1 and isinstance(ev[0], RiskTrip)
    reset = r.reset(T0 + S, "alice")
    assert isinstance(reset, RiskReset) and reset.was == TripReason.MANUAL and not r.tripped
    assert r.reset(T0 + S, "alice") is None
    assert r.allows(1, 100, 0)


def test_reset_restarts_the_drawdown_peak_and_windows() -> None:
    r = risk(max_drawdown=Decimal(10), max_reject_rate_per_min=1)
    r.on_pnl(T0, to_units(100))
    r.on_pnl(T0, to_units(80))
    assert r.tripped
    r.reset(T0, "bob")
    r.on_pnl(T0, to_units(75))  # 5 under the new peak (80)
    assert not r.tripped
    r.on_reject(T0)
    assert not r.tripped
