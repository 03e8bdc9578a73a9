"""fastmm.speedups.report() names every compiled twin and says truly whether it is in use."""

from __future__ import annotations

import os
import shutil

from fastmm import speedups
from fastmm.core import price_aggregator, reconcile
from fastmm.data import book as l2
from fastmm.fix import codec as fix_codec
from fastmm.venues.truex import codec as truex_codec


def test_report_names_each_twin_with_the_flag_its_module_uses() -> None:
    r = speedups.report()
    assert r == {"coinbase_l2_updates": l2.COMPILED, "reconcile_plan": reconcile.COMPILED,
                 "price_aggregator": price_aggregator.COMPILED,
                 "fix_parse": fix_codec.COMPILED, "truex_decode": truex_codec.COMPILED,
                 "fix_encode": fix_codec.ENCODE_COMPILED, "truex_encode": truex_codec.ENCODE_COMPILED}
    assert (fix_codec.FrameParser.feed is not fix_codec.FrameParser.feed_py) == r["fix_parse"]
    assert (fix_codec.parse_message is not fix_codec.parse_message_py) == r["fix_parse"]
    tc = truex_codec.TruexCodec
    assert (tc.execution_report is not tc.execution_report_py) == r["truex_decode"]
    assert (tc.md_incremental is not tc.md_incremental_py) == r["truex_decode"]
    assert (fix_codec.Encoder.encode is not fix_codec.Encoder.encode_py) == r["fix_encode"]
    for name in ("new_order_single", "order_cancel_request", "order_cancel_replace_request"):
        assert (getattr(tc, name) is not getattr(tc, name + "_py")) == r["truex_encode"]
    assert (reconcile.plan is not reconcile.plan_py) == r["reconcile_plan"]
    pa = price_aggregator
    assert (pa.PriceAggregator.__mro__[1] is not pa.AggregatorCorePy) == r["price_aggregator"]
    assert (l2.apply_updates is not l2.apply_updates_py) == r["coinbase_l2_updates"]
    line = speedups.describe()
    for name, on in r.items():
        assert f"{name}={'compiled' if on else 'pure'}" in line
    assert speedups.report("reconcile_plan") == {"reconcile_plan": reconcile.COMPILED}
    word = "compiled" if reconcile.COMPILED else "pure"
    assert speedups.describe("reconcile_plan") == f"compiled twins: reconcile_plan={word}"


def test_asking_for_one_twin_imports_only_its_module() -> None:
    import subprocess
    import sys

    code = ("import sys; from fastmm import speedups; speedups.report('reconcile_plan'); "
            "print('fastmm.venues.coinbase.codec' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_fastmm_pure_runs_every_pure_twin() -> None:
    import subprocess
    import sys

    code = "from fastmm import speedups; print(speedups.describe())"
    env = {**os.environ, "FASTMM_PURE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                         env=env)
    assert out.stdout.strip() == ("compiled twins: coinbase_l2_updates=pure reconcile_plan=pure "
                                  "price_aggregator=pure fix_parse=pure truex_decode=pure fix_encode=pure "
                                  "truex_encode=pure")


def test_every_twin_is_compiled_where_a_compiler_exists() -> None:
    if os.environ.get("FASTMM_PURE") == "1":
        assert not any(speedups.report().values()), speedups.report()
    elif shutil.which("cc"):
        assert all(speedups.report().values()), speedups.report()
    else:
        assert set(speedups.report()) == {"coinbase_l2_updates", "reconcile_plan", "price_aggregator",
                                          "fix_parse", "truex_decode", "fix_encode", "truex_encode"}
