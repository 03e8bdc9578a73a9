"""FIX codec throughput: fastmm vs plain simplefix vs QuickFIX (C++), measured in the same run.

NewOrderSingle encodes/s (TrueX's field set, header + body + checksum, from integer ticks/lots) and
ExecutionReport parses/s (a TrueX fill, from bytes to fields; for fastmm also into the typed record),
one message per call and 1,000 messages per buffer. Ratios are against plain simplefix usage
(FixMessage + append_pair + encode / FixParser), so they hold across machines; absolute rates drift.

A second table is the inbound hot path against QuickFIX: ExecutionReport and MarketDataIncrementalRefresh
(35=X) parses/s by fastmm's pure parser, by its compiled twin (``fastmm.speedups``; absent when the build
had no C compiler) and by QuickFIX's ``Message(str)``, with ratios to QuickFIX in the same run. "+record"
is fastmm's typed record; QuickFIX's "+fields" reads the same top-level fields back as strings.

A third table is the outbound hot path, the core's order action to FIX bytes: the TrueX body alone
(NewOrderSingle D), the frame alone (header, BodyLength, CheckSum) and the whole D, G (replace) and
F (cancel) with SendingTime, by fastmm's pure twins and by their compiled twins, ratios to pure in the same
run. The first table's fastmm column runs whichever twins are in use (the line above each table says).

    .venv/bin/python bench/fix_codec.py [--seconds 0.5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable

import simplefix

from fastmm import speedups
from fastmm.config import InstrumentConfig
from fastmm.fix.codec import Encoder, FrameParser, format_timestamp
from fastmm.instrument import Instrument
from fastmm.venues.truex.codec import BUY, TruexCodec

NOW_NS = 1_757_515_154_463_394_000
ER = (b"8=FIXT.1.1|9=0|35=8|49=TRUEX_UAT_GW|56=FASTMM|34=1234|52=20250910-14:39:14.463394|37=8412771|"
      b"11=mmt67uk8001|453=1|448=CLIENT1|452=3|17=E998877|150=F|39=1|55=BTC-PYUSD|167=CSPOT|54=1|40=2|"
      b"38=0.1|44=60000.5|59=1|32=0.04|31=60000.5|151=0.06|14=0.04|6=60000.5|60=20250910-14:39:14.463394|"
      b"851=1|136=1|137=0.0012|139=4|880=T1|10=000|")


def _frame(text: bytes) -> bytes:
    """Fix BodyLength and CheckSum of a hand-written frame."""
    body = text.replace(b"|", b"\x01")
    start = body.index(b"\x0135=") + 1
    end = body.index(b"\x0110=") + 1
    core = body[start:end]
    head = b"8=FIXT.1.1\x019=%d\x01" % len(core)
    out = head + core
    return out + b"10=%03d\x01" % (sum(out) & 255)


ER_FRAME = _frame(ER)
MDX = (b"8=FIXT.1.1|9=0|35=X|49=TRUEX_UAT_MD|56=FASTMM|34=99|52=20250910-14:39:14.463394|262=md1|268=3|"
       b"279=0|269=0|270=60000|271=0.5|1023=1|273=20250910-14:39:14.463394123|"
       b"279=1|269=1|270=60001|271=0.25|1023=1|273=20250910-14:39:14.463394123|"
       b"279=2|269=2|270=60000.5|271=0.01|2446=1|273=20250910-14:39:14.463394123|10=000|")
MDX_FRAME = _frame(MDX)


def rate(fn: Callable[[], object], seconds: float, per_call: int = 1) -> float:
    """Calls per second (x per_call), best of three runs of ``seconds`` each."""
    n = 1
    while True:  # calibrate
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt > 0.05:
            break
        n *= 4
    reps = max(1, int(n * seconds / dt))
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = max(best, reps * per_call / (time.perf_counter() - t))
    return best


# -- fastmm ---------------------------------------------------------------------------------------------
CODEC = TruexCodec(Instrument.from_config(InstrumentConfig()), "CLIENT1")
ENC = Encoder("FIXT.1.1", "FASTMM", "TRUEX_UAT_OE")


def fastmm_encode() -> bytes:
    body = CODEC.new_order_single("mmt67uk8001", BUY, 1000, 120001)
    return ENC.encode(b"D", 1234, format_timestamp(NOW_NS), body)


_fm_parser = FrameParser()


def fastmm_parse() -> object:
    (m,) = _fm_parser.feed(ER_FRAME)
    return m


def fastmm_parse_decode() -> object:
    (m,) = _fm_parser.feed(ER_FRAME)
    return CODEC.execution_report(m)  # type: ignore[arg-type]


BATCH = ER_FRAME * 1000


def fastmm_parse_batch() -> object:
    out = _fm_parser.feed(BATCH)
    assert len(out) == 1000
    return out


def inbound_funcs() -> dict[str, dict[str, Callable[[], object]]]:
    """The inbound hot path by each fastmm twin: parse (frame, checksum, fields) and parse+record."""
    parser = FrameParser()
    feeds = {"fastmm-pure": lambda b: FrameParser.feed_py(parser, b)}
    er_dec = {"fastmm-pure": CODEC.execution_report_py}
    x_dec = {"fastmm-pure": CODEC.md_incremental_py}
    if speedups.report("fix_parse", "truex_decode") == {"fix_parse": True, "truex_decode": True}:
        feeds["fastmm-compiled"] = parser.feed
        er_dec["fastmm-compiled"] = CODEC.execution_report
        x_dec["fastmm-compiled"] = CODEC.md_incremental
    out: dict[str, dict[str, Callable[[], object]]] = {}
    for name, feed in feeds.items():
        er, x = er_dec[name], x_dec[name]
        out[name] = {
            "ER parse": lambda feed=feed: feed(ER_FRAME)[0],
            "ER parse+record": lambda feed=feed, er=er: er(feed(ER_FRAME)[0]),
            "35=X parse": lambda feed=feed: feed(MDX_FRAME)[0],
            "35=X parse+record": lambda feed=feed, x=x: x(feed(MDX_FRAME)[0]),
        }
    # both twins must give the same record (the twin-equality tests check this thoroughly)
    recs = {name: (fns["ER parse+record"](), fns["35=X parse+record"]()) for name, fns in out.items()}
    assert len(set(recs.values())) == 1, recs
    return out


def outbound_funcs() -> dict[str, dict[str, Callable[[], object]]]:
    """The outbound hot path by each fastmm twin: body, frame, and action -> whole frame for D, G, F."""
    tc = TruexCodec
    twins = {"fastmm-pure": (tc.new_order_single_py, tc.order_cancel_replace_request_py,
                             tc.order_cancel_request_py, Encoder.encode_py)}
    if all(speedups.report("fix_encode", "truex_encode").values()):
        twins["fastmm-compiled"] = (tc.new_order_single, tc.order_cancel_replace_request,
                                    tc.order_cancel_request, Encoder.encode)
    body = CODEC.new_order_single_py("mmt67uk8001", BUY, 1000, 120001)
    sending_time = format_timestamp(NOW_NS)
    out: dict[str, dict[str, Callable[[], object]]] = {}
    for name, (nos, ocrr, ocr, enc) in twins.items():
        out[name] = {
            "D body": lambda nos=nos: nos(CODEC, "mmt67uk8001", BUY, 1000, 120001),
            "frame": lambda enc=enc: enc(ENC, b"D", 1234, sending_time, body),
            "D encode": lambda nos=nos, enc=enc: enc(ENC, b"D", 1234, format_timestamp(NOW_NS),
                                                     nos(CODEC, "mmt67uk8001", BUY, 1000, 120001)),
            "G encode": lambda ocrr=ocrr, enc=enc: enc(ENC, b"G", 1235, format_timestamp(NOW_NS), ocrr(
                CODEC, "mmt67uk8002", "mmt67uk8001", 1000, 120003)),
            "F encode": lambda ocr=ocr, enc=enc: enc(ENC, b"F", 1236, format_timestamp(NOW_NS),
                                                     ocr(CODEC, "mmt67uk8003", "mmt67uk8002")),
        }
    # both twins must give the same bytes (the twin-equality tests check this thoroughly)
    frames = {name: tuple(fn() for fn in fns.values()) for name, fns in out.items()}
    assert len(set(frames.values())) == 1, frames
    return out


# -- plain simplefix ---------------------------------------------------------------------------------------
def simplefix_encode() -> bytes:
    m = simplefix.FixMessage()
    m.append_pair(8, "FIXT.1.1")
    m.append_pair(35, "D")
    m.append_pair(49, "FASTMM")
    m.append_pair(56, "TRUEX_UAT_OE")
    m.append_pair(34, 1234)
    m.append_utc_timestamp(52, NOW_NS / 1e9, precision=6)
    m.append_pair(11, "mmt67uk8001")
    m.append_pair(453, 1)
    m.append_pair(448, "CLIENT1")
    m.append_pair(452, 3)
    m.append_pair(55, "BTC-PYUSD")
    m.append_pair(167, "CSPOT")
    m.append_pair(54, "1")
    m.append_pair(40, "2")
    m.append_pair(38, "0.1")
    m.append_pair(44, "60000.5")
    m.append_pair(59, "1")
    return m.encode()


_sf_parser = simplefix.FixParser()


def simplefix_parse() -> object:
    _sf_parser.append_buffer(ER_FRAME)
    return _sf_parser.get_message()


def simplefix_parse_batch() -> object:
    _sf_parser.append_buffer(BATCH)
    n = 0
    while _sf_parser.get_message() is not None:
        n += 1
    assert n == 1000
    return n


# -- QuickFIX ---------------------------------------------------------------------------------------------
def quickfix_funcs() -> dict[str, Callable[[], object]]:
    try:
        import quickfix as fix
    except ImportError:
        return {}
    er_text = ER_FRAME.decode()

    def qf_encode() -> str:
        m = fix.Message()
        h = m.getHeader()
        h.setField(8, "FIXT.1.1")
        h.setField(35, "D")
        h.setField(49, "FASTMM")
        h.setField(56, "TRUEX_UAT_OE")
        h.setField(34, "1234")
        h.setField(52, "20250910-14:39:14.463394")
        for tag, v in ((11, "mmt67uk8001"), (55, "BTC-PYUSD"), (167, "CSPOT"), (54, "1"), (40, "2"),
                       (38, "0.1"), (44, "60000.5"), (59, "1")):
            m.setField(tag, v)
        g = fix.Group(453, 448)
        g.setField(448, "CLIENT1")
        g.setField(452, "3")
        m.addGroup(g)
        return m.toString()

    def qf_parse() -> object:
        return fix.Message(er_text, False)

    return {"encode": qf_encode, "parse": qf_parse}


ER_FIELDS = (37, 11, 17, 150, 39, 54, 40, 44, 38, 31, 32, 151, 14, 6, 59, 60, 851, 880)
X_FIELDS = (262, 268)


def quickfix_inbound() -> dict[str, Callable[[], object]]:
    """QuickFIX's Message(str) (no data dictionary: no validation, groups stay flat fields)."""
    try:
        import quickfix as fix
    except ImportError:
        return {}
    er_text, x_text = ER_FRAME.decode(), MDX_FRAME.decode()

    def fields(m: object, tags: tuple[int, ...]) -> tuple[str, ...]:
        get = m.getField  # type: ignore[attr-defined]
        return (m.getHeader().getField(34), *(get(t) for t in tags))  # type: ignore[attr-defined]

    return {"ER parse": lambda: fix.Message(er_text, False),
            "ER parse+record": lambda: fields(fix.Message(er_text, False), ER_FIELDS),
            "35=X parse": lambda: fix.Message(x_text, False),
            "35=X parse+record": lambda: fields(fix.Message(x_text, False), X_FIELDS)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="time per measurement (best of 3)")
    ap.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args(argv)

    # sanity: every encoder makes a frame simplefix parses to the same fields
    check = simplefix.FixParser()
    check.append_buffer(fastmm_encode())
    ref = check.get_message()
    assert ref is not None and ref.get(44) == b"60000.5" and ref.get(448) == b"CLIENT1"

    rows: dict[str, dict[str, float]] = {"fastmm": {}, "simplefix": {}, "quickfix": {}}
    s = args.seconds
    rows["fastmm"]["encode"] = rate(fastmm_encode, s)
    rows["fastmm"]["parse"] = rate(fastmm_parse, s)
    rows["fastmm"]["parse+record"] = rate(fastmm_parse_decode, s)
    rows["fastmm"]["parse_batch1000"] = rate(fastmm_parse_batch, s, 1000)
    rows["simplefix"]["encode"] = rate(simplefix_encode, s)
    rows["simplefix"]["parse"] = rate(simplefix_parse, s)
    rows["simplefix"]["parse_batch1000"] = rate(simplefix_parse_batch, s, 1000)
    qf = quickfix_funcs()
    for k, fn in qf.items():
        rows["quickfix"][k] = rate(fn, s)
    for r in rows.values():
        if "encode" in r and "parse" in r:  # one encode plus one parse, as a round trip rate
            parse = r.get("parse+record", r["parse"])
            r["encode+parse"] = 1.0 / (1.0 / r["encode"] + 1.0 / parse)

    base = rows["simplefix"]
    metrics = ["encode", "parse", "parse+record", "parse_batch1000", "encode+parse"]
    print(f"FIX codec, msgs/s (best of 3 x {s:g} s); ratio = vs plain simplefix in this run "
          f"({speedups.describe('fix_encode', 'truex_encode', 'fix_parse', 'truex_decode')})")
    print(f"{'metric':<18}" + "".join(f"{n:>14}{'ratio':>8}" for n in rows))
    for m in metrics:
        line = f"{m:<18}"
        for name in rows:
            v = rows[name].get(m)
            b = base.get(m) or base.get(m.replace("+record", ""))
            line += f"{v:>14,.0f}{v / b:>7.2f}x" if v and b else f"{'-':>14}{'':>8}"
        print(line)
    ratio = rows["fastmm"]["encode+parse"] / base["encode+parse"]
    print(f"fastmm encode+parse (parse into a typed ExecutionReport) vs plain simplefix: {ratio:.2f}x "
          f"(target >= 2x)")

    # the inbound hot path: both fastmm twins and QuickFIX, in this run
    inbound: dict[str, dict[str, float]] = {}
    for name, fns in {**inbound_funcs(), "quickfix": quickfix_inbound()}.items():
        inbound[name] = {k: rate(fn, s) for k, fn in fns.items()}
    qf_row = inbound["quickfix"]
    print()
    print(f"Inbound ER / 35=X, msgs/s (best of 3 x {s:g} s); ratio = vs QuickFIX in this run "
          f"({speedups.describe('fix_parse', 'truex_decode')})")
    print(f"{'metric':<18}" + "".join(f"{n:>16}{'ratio':>8}" for n in inbound))
    for m in ("ER parse", "ER parse+record", "35=X parse", "35=X parse+record"):
        line = f"{m:<18}"
        for name in inbound:
            v = inbound[name].get(m)
            b = qf_row.get(m)
            if v:
                line += f"{v:>16,.0f}{v / b:>7.2f}x" if b else f"{v:>16,.0f}{'':>8}"
            else:
                line += f"{'-':>16}{'':>8}"
        print(line)
    print("(quickfix +record = Message(str) then the same top-level fields read back as strings)")
    vs_qf: dict[str, float] = {}
    if qf_row:
        for name in inbound:
            if name != "quickfix":
                vs_qf[name] = inbound[name]["ER parse"] / qf_row["ER parse"]
                print(f"{name} ExecutionReport parse vs QuickFIX: {vs_qf[name]:.2f}x (target >= 1x)")

    # the outbound hot path: both fastmm twins, in this run
    outbound = {name: {k: rate(fn, s) for k, fn in fns.items()} for name, fns in outbound_funcs().items()}
    pure_row = outbound["fastmm-pure"]
    print()
    print(f"Outbound action -> FIX bytes, msgs/s (best of 3 x {s:g} s); ratio = vs fastmm-pure in this run "
          f"({speedups.describe('fix_encode', 'truex_encode')})")
    print(f"{'metric':<18}" + "".join(f"{n:>16}{'ratio':>8}" for n in outbound))
    for m in pure_row:
        print(f"{m:<18}" + "".join(f"{outbound[n][m]:>16,.0f}{outbound[n][m] / pure_row[m]:>7.2f}x"
                                   for n in outbound))
    print("(body: TrueX's D body from ints; frame: header + BodyLength + CheckSum around it; "
          "D/G/F encode: both, with SendingTime)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": sys.version.split()[0], "machine": platform.machine(), "seconds": s,
                       "msgs_per_s": rows, "fastmm_vs_simplefix_encode_parse": ratio,
                       "inbound_msgs_per_s": inbound, "er_parse_vs_quickfix": vs_qf,
                       "outbound_msgs_per_s": outbound,
                       "twins": speedups.report("fix_parse", "truex_decode", "fix_encode", "truex_encode")},
                      f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
