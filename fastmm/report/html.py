"""The session's HTML page: the summary tables and the PNG inline."""

from __future__ import annotations

import base64
import html
from typing import Any

from fastmm.report.session import Session, utc_text
from fastmm.units import E8


def table(head: list[str], rows: list[list[Any]]) -> str:
    e = html.escape
    out = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows]
    return "\n".join([*out, "</table>"])


def render_html(s: Session, summ: dict[str, Any], png: bytes, phases: list[tuple[int, str]]) -> str:
    e = html.escape
    f = s.final
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>fastmm session report</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1100px}",
        "table{border-collapse:collapse;margin:.5em 0}",
        "td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px;text-align:right}th{background:#f3f3f3}",
        "</style></head><body>",
        f"<h1>fastmm session report</h1><p>{e(str(summ['journal']))}<br>{e(str(summ['start']))} to "
        f"{e(str(summ['end']))} ({summ['duration_s']:.1f} s), {s.records} records"
        f"{f', {s.skipped} skipped' if s.skipped else ''}"
        f"{', ' + str(summ['corrupt_lines']) + ' corrupt lines' if summ['corrupt_lines'] else ''}</p>",
        "<h2>Result (rebuilt from the journal's fills)</h2>",
        table(["position BTC", "PnL PYUSD", "realized", "unrealized", "fees", "trades", "volume BTC",
                "max drawdown", "last mid"],
               [[f"{f['position_btc']:+.4f}", f"{f['total']:+.2f}", f"{f['realized']:+.2f}",
                 f"{f['unrealized']:+.2f}", f"{f['fees']:.2f}", f["trades"], f"{f['volume_btc']:.4f}",
                 f"{f['max_drawdown']:.2f}", f"{f['last_mid']:.2f}"]]),
    ]
    rep = summ.get("engine_report")
    if rep and rep.get("position"):
        p = rep["position"]
        parts += ["<h2>Engine's own final report (report.json)</h2>", table(
            ["stop reason", "position BTC", "PnL PYUSD", "realized", "unrealized", "fees", "fills TrueX",
             "fills hedge", "unconfirmed stop steps"],
            [[rep.get("stop_reason"), f"{p['position_lots'] * s.lot_size:+.4f}",
              f"{(p['realized_e8'] + p['unrealized_e8'] - p['fees_e8']) / E8:+.2f}",
              f"{p['realized_e8'] / E8:+.2f}", f"{p['unrealized_e8'] / E8:+.2f}", f"{p['fees_e8'] / E8:.2f}",
              p["truex_fills"], p["hedge_fills"], ", ".join(rep.get("timed_out_steps") or []) or "none"]])]
    parts.append(f"<img alt='session plots' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    parts += ["<h2>Orders and rejects</h2>",
              table(["new", "cancel", "replace"], [[summ["orders"].get(k, 0) for k in
                                                     ("order", "cancel", "replace")]]),
              table(["reject reason", "count"], [[k, n] for k, n in sorted(summ["rejects"].items())])
              if summ["rejects"] else "<p>no rejects</p>"]
    rts = summ["round_trips_ms"]
    parts += ["<h2>Latency</h2>", table(["round trip", "count", "p50 ms", "p99 ms", "max ms"],
                                         [[k, v["count"], f"{v['p50_ms']:.3f}", f"{v['p99_ms']:.3f}",
                                           f"{v['max_ms']:.3f}"] for k, v in rts.items()])
              if rts else "<p>no round trips in the journal</p>"]
    lat = summ.get("stage_latency_us")
    if lat:
        parts.append(table(["quoter stage", "count", "p50 us", "p99 us", "p99.9 us", "max us"],
                            [[k, v["count"], v["p50_us"], v["p99_us"], v["p999_us"], v["max_us"]]
                             for k, v in lat.items()]))
    if phases:
        parts += ["<h2>Phases</h2>", table(["time", "phase"], [[utc_text(t), n] for t, n in phases])]
    fills = s.fills[-500:]
    parts += [f"<h2>Fills ({len(s.fills)}{', last 500' if len(s.fills) > 500 else ''})</h2>",
              table(["time", "venue", "side", "price", "BTC", "liquidity", "fee", "ClOrdID"],
                     [[utc_text(x.t_ns), x.venue, x.side, f"{x.price:.2f}", f"{x.qty_btc:.4f}", x.liquidity,
                       x.fee or "", x.cl_ord_id] for x in fills]) if fills else "<p>no fills</p>",
              "</body></html>"]
    return "\n".join(parts)
