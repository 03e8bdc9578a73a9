"""`fastmm status` shows the optional processes' connection and the firm view, up or down."""

from __future__ import annotations

from fastmm.monitor.status import render


def _status(firm: dict) -> dict:
    proc = {"pid": 1, "age_ms": 5, "fresh": False, "logged_on": False, "subscribed": False, "quoting": False,
            "risk_tripped": False, "messages": 10, "errors": 0, "restarts": 0}
    return {"running": True, "instance": "alpha", "phase": "QUOTING", "books": {},
            "processes": {"shipper": {**proc, "connected": True}, "firm": {**proc, "connected": False},
                          "quoter": {**proc, "connected": False}}, "firm": firm}


def test_status_shows_redis_up_with_the_firm_position() -> None:
    text = render(_status({"redis_up": True, "others_live": 2, "others_position": 0.3, "own_position": -0.1,
                           "others_pnl": 12.5, "errors": 0, "ok_age_ms": 100}))
    assert "shipper[connected" in text and "firm[DOWN" in text and "quoter[-" in text
    assert "firm     Redis up  2 other instance(s): position +0.3000, PnL +12.50; firm +0.2000" in text


def test_status_shows_redis_down() -> None:
    text = render(_status({"redis_up": False, "others_live": 0, "others_position": 0.0, "own_position": 0.0,
                           "others_pnl": 0.0, "errors": 7, "ok_age_ms": 4200}))
    assert "REDIS DOWN (last ok 4200 ms ago): own limits only, 7 failed round trips" in text
