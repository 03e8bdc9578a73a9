"""The edge model: fair value signals, the cost-charging spread, the fade, and the hedge risk gate."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from fastmm.config import Config, EdgeConfig, FeesConfig
from fastmm.core.edge import EdgeModel
from fastmm.core.fair_value import FairValue
from fastmm.core.hedge import HedgePlanner, HedgeRisk, PlaceLimit
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import CancelOrder, NewOrder, OrderAccepted, ReplaceOrder, Side

S = 1_000_000_000
E8 = 100_000_000
MID = 60_000.0


def fair(**kw: float) -> FairValue:
    f = FairValue(EdgeConfig(**kw))   # type: ignore[arg-type]
    f.on_mid(0, MID)
    return f


def test_microprice_leans_toward_the_thin_side() -> None:
    f = fair(micro_weight=1.0, flow_bps=0.0)
    # 1 BTC bid, 9 BTC ask: sellers heavy, the price is more likely to tick down
    f.on_book(S, "coinbase", 59_999 * E8, 60_001 * E8, 1 * E8, 9 * E8)
    micro = (59_999 * 9 + 60_001 * 1) / 10
    assert f.micro_bps == pytest.approx((micro - 60_000) / 60_000 * 1e4)
    assert f.signal_bps(S) < 0
    f.on_book(S, "coinbase", 59_999 * E8, 60_001 * E8, 9 * E8, 1 * E8)
    assert f.signal_bps(S) > 0
    f.on_book(S, "coinbase", 0, 60_001 * E8, 9 * E8, 1 * E8)     # one side gone: the source drops out
    assert f.signal_bps(S) == 0.0


def test_trade_flow_is_signed_and_decays() -> None:
    f = fair(micro_weight=0.0, flow_bps=2.0, flow_window_s=1.0)
    f.on_trade(S, 1, 3 * E8)
    f.on_trade(S, 2, 1 * E8)
    assert f.flow(S) == pytest.approx(0.5)                        # (3 - 1) / 4
    assert f.signal_bps(S) == pytest.approx(1.0)
    f.on_trade(S + 10 * S, 2, E8 // 10)                           # ten windows later the old flow is gone
    assert f.flow(11 * S) < -0.9


def test_momentum_and_volatility_follow_the_mid() -> None:
    f = fair(fade_window_ms=1000.0, volatility_window_s=10.0, sigma_prior_bps=0.0)
    for i in range(1, 21):                                        # a flat mid: no vol, no run
        f.on_mid(i * S // 10, MID)
    assert f.sigma_bps == 0.0 and f.move_bps == pytest.approx(0.0)
    f.on_mid(21 * S // 10, MID * 1.0005)                          # +5 bps at once
    assert f.move_bps > 4.0 and f.sigma_bps > 0.0


def model(cfg: EdgeConfig, fees: FeesConfig | None = None) -> tuple[EdgeModel, FairValue]:
    f = FairValue(cfg)
    f.on_mid(0, MID)
    return EdgeModel(cfg, fees or FeesConfig(), f, base_lots=1000, max_lots=50_000,
                     hedge_threshold_lots=20_000), f


def test_half_spread_charges_fee_adverse_selection_and_volatility() -> None:
    cfg = EdgeConfig(micro_weight=0.0, flow_bps=0.0, sigma_prior_bps=2.0, horizon_s=4.0, vol_mult=1.0,
                     adverse_bps=1.5, min_half_spread_bps=0.5, skew_bps=0.0, hedge_charge=0.0,
                     fade_bps=1000.0)
    m, _ = model(cfg, FeesConfig(truex_maker_bps=1))              # type: ignore[arg-type]
    assert m.half_spread_bps() == pytest.approx(1 + 1.5 + 2.0 * 2.0)
    mid_ticks = MID / 0.5
    bid, ask = m.offsets(mid_ticks, 0, 0.0)
    assert bid == pytest.approx(6.5 * mid_ticks * 1e-4) and ask == pytest.approx(bid)
    m2, _ = model(replace(cfg, adverse_bps=-100.0))               # the floor holds
    assert m2.half_spread_bps() == 0.5


def test_inventory_skews_and_the_growing_side_pays_the_expected_hedge() -> None:
    cfg = EdgeConfig(micro_weight=0.0, flow_bps=0.0, skew_bps=5.0, hedge_charge=1.0, fade_bps=1000.0)
    m, _ = model(cfg)
    mid_ticks = MID / 0.5
    bid0, ask0 = m.offsets(mid_ticks, 0, 0.0)
    assert bid0 == pytest.approx(ask0)                            # flat: both sides pay the same charge
    bid, ask = m.offsets(mid_ticks, 10_000, 0.0)                  # long 1 BTC
    assert bid > bid0 and ask < ask0                              # buys further, sells nearer
    # only the buy side grows the position: it alone pays 26 bps x (1.1 BTC / 2 BTC threshold)
    assert m.hedge_charge_bps(10_000, 1) == pytest.approx(26 * 11_000 / 20_000)
    assert m.hedge_charge_bps(10_000, -1) == 0.0
    assert m.hedge_charge_bps(30_000, 1) == pytest.approx(26.0)   # capped at one full hedge


def test_a_run_of_the_mid_steps_back_or_pulls_the_side_it_runs_into() -> None:
    cfg = EdgeConfig(micro_weight=0.0, flow_bps=0.0, fade_bps=2.0, fade_extra_bps=3.0, fade_window_ms=1000.0,
                     skew_bps=0.0, hedge_charge=0.0)
    m, f = model(cfg)
    mid_ticks = MID / 0.5
    bid0, ask0 = m.offsets(mid_ticks, 0, 0.0)
    f.on_mid(S // 100, MID * 1.0005)                              # +5 bps in 10 ms: takers will lift asks
    bid, ask = m.offsets(mid_ticks, 0, 0.0)
    assert ask == pytest.approx(ask0 + 3.0 * mid_ticks * 1e-4) and bid == pytest.approx(bid0)
    mp, fp = model(replace(cfg, fade_pull=True))
    fp.on_mid(S // 100, MID * 0.9995)                             # a fall: the bid is pulled
    bid, ask = mp.offsets(mid_ticks, 0, 0.0)
    assert bid == math.inf and math.isfinite(ask)


def test_trading_core_quotes_one_side_when_the_edge_pulls_the_other() -> None:
    cfg = Config()
    cfg = replace(cfg, edge=replace(cfg.edge, fade_pull=True, fade_bps=2.0))
    core = TradingCore(cfg, cl_ord_prefix="e")
    assert cfg.quoting.model == "edge"
    first = core.on_price(S, MID, 1.0, False, 0, 0)
    first += core.on_timer(S + S // 5)
    news = [a for a in first if isinstance(a, NewOrder)]
    assert {a.side for a in news} == {Side.BUY, Side.SELL}
    for a in news:
        core.on_order_event(OrderAccepted(a.cl_ord_id), S + S // 5)
    sell = next(a.cl_ord_id for a in news if a.side == Side.SELL)
    # the reference jumps 6 bps up within 300 ms: the ask is canceled, nothing new is offered
    acts = core.on_price(S + S // 2, MID * 1.0006, 1.0, False, 0, 0)
    assert [a for a in acts if isinstance(a, NewOrder | ReplaceOrder) and a.side == Side.SELL] == []
    assert [a.orig_cl_ord_id for a in acts if isinstance(a, CancelOrder)] == [sell]


def test_hedge_risk_gate_waits_for_volatility_worth_the_fee() -> None:
    def planner(sigma_prior: float) -> HedgePlanner:
        risk = HedgeRisk(horizon_s=100.0, z=2.0, cost_bps=26.0, prior_sigma_bps=sigma_prior)
        return HedgePlanner(threshold_lots=20_000, min_e8=100_000, max_e8=E8, limit_timeout_ns=5 * S,
                            lot_e8=10_000, risk=risk)

    bid, ask = 60_000 * E8, 60_001 * E8
    calm = planner(1.0)                      # 2 x 1 bps x 10 = 20 bps of risk < 26 bps of fee: keep it
    assert calm.decide(25_000, 0, 0, bid, ask, 0) is None
    calm.flatten = True                      # the supervisor's hedge_flat ignores the gate
    assert isinstance(calm.decide(25_000, 0, 0, bid, ask, 0), PlaceLimit)
    wild = planner(2.0)                      # 40 bps of risk > 26: hedge
    assert isinstance(wild.decide(25_000, 0, 0, bid, ask, 0), PlaceLimit)
    assert HedgeRisk.from_config(replace(Config(), hedge=replace(Config().hedge, risk_horizon_s=0.0))) is None
