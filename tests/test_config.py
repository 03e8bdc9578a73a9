"""Config loading: defaults, TOML, environment overrides, secrets, and one-line errors."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from fastmm.config import Config, ConfigError, Secret, describe, load_config

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_defaults_match_the_prd() -> None:
    c = load_config(None, environ={})
    q, r, inv, fees = c.quoting, c.venue_rules, c.inventory, c.fees
    # the shipped model is "edge" with one level (issue 18: the default must trade; the PRD's 5-level
    # 50 bps ladder never filled on any recording); the ladder's own settings keep the PRD's values
    assert (q.model, q.levels) == ("edge", 1)
    assert (q.base_spread_bps, q.level_spacing_ticks, q.reprice_threshold_ticks) == (50, 1, 1)
    assert (q.base_size_btc, q.size_decay, q.confidence_threshold) == (Decimal("0.1"), 0.8, 0.3)
    assert (r.max_orders_per_sec, r.min_notional, r.price_band_pct) == (8, 1, Decimal("2.5"))
    assert c.instrument.tick_size == Decimal("0.50") and c.instrument.lot_size == Decimal("0.0001")
    assert (inv.max_position_btc, inv.hedge_threshold_btc, inv.max_skew_ticks) == (5, 2, 3)
    assert (inv.skew_exponent, inv.emergency_position_btc) == (1.5, 6)
    assert (fees.truex_maker_bps, fees.truex_taker_bps, fees.kraken_maker_bps, fees.kraken_taker_bps) == (
        0, 10, 16, 26)
    assert c.pnl.log_interval_s == 30
    assert (c.hedge.limit_timeout_s, c.hedge.min_hedge_btc, c.hedge.max_hedge_btc) == (
        5, Decimal("0.001"), Decimal("1.0"))
    assert c.truex.order_entry.target_comp_id == "TRUEX_UAT_OE"
    assert c.truex.market_data.target_comp_id == "TRUEX_UAT_MD"
    assert c.truex.market_data.port != c.truex.order_entry.port


def test_toml_values_are_read_and_typed(tmp_path: Path) -> None:
    p = write(tmp_path, """
[quoting]
levels = 3
base_spread_bps = 20.5
model = "glft"
[truex.order_entry]
port = 9999
[processes]
quoter = [1]
""")
    c = load_config(p, environ={})
    assert c.quoting.levels == 3
    assert c.quoting.base_spread_bps == Decimal("20.5")
    assert c.quoting.model == "glft"
    assert c.truex.order_entry.port == 9999
    assert c.truex.market_data.port == 20484
    assert c.processes.quoter == [1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[quoting]\nlevelz = 3\n", "quoting.levelz: unknown setting"),
        ("[quoting]\nlevels = 'five'\n", "quoting.levels: expected an integer"),
        ("[quoting]\nlevels = 2.5\n", "quoting.levels: expected an integer"),
        ("[quoting]\nlevels = true\n", "quoting.levels: expected an integer"),
        ("[quoting]\nlevels = 0\n", "quoting.levels: 0 is below the minimum 1"),
        ("[quoting]\nconfidence_threshold = 1.5\n", "quoting.confidence_threshold: 1.5 is above the maximum"),
        ("[quoting]\nmodel = 'magic'\n", "quoting.model: expected one of"),
        ("[quoting]\nbase_size_btc = 'abc'\n", "quoting.base_size_btc: expected a decimal number"),
        ("[quoting]\nbase_size_btc = 0.12345\n", "quoting.base_size_btc: 0.12345 is not a multiple"),
        ("[bogus]\nx = 1\n", "bogus: unknown setting"),
        ("quoting = 3\n", "quoting: expected a table"),
        ("[truex]\napi_secret = 'x'\n", "truex.api_secret: secrets are not read from files"),
        ("[shm]\nring_slots = 1000\n", "shm.ring_slots: 1000 is not a power of two"),
        ("[inventory]\nhedge_threshold_btc = 9\n", "inventory.hedge_threshold_btc: must not exceed"),
        ("[processes]\nquoter = ['a']\n", "processes.quoter[0]: expected an integer"),
        ("[processes]\nstart = 'spawn'\n", "processes.start: expected one of 'fork', 'exec', got str 'spawn'"),
        ("[quoting\n", "not valid TOML"),
    ],
)
def test_bad_config_fails_with_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), environ={})
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_environment_overrides_and_secrets(tmp_path: Path) -> None:
    p = write(tmp_path, "[quoting]\nlevels = 3\n")
    env = {
        "FASTMM_QUOTING__LEVELS": "7",
        "FASTMM_TRUEX__ORDER_ENTRY__HOST": "10.0.0.1",
        "FASTMM_TRUEX_API_KEY_ID": "key-id",
        "FASTMM_TRUEX_API_SECRET": "s3cr3t-value",
        "FASTMM_KRAKEN_API_SECRET": "k-secret",
        "UNRELATED": "x",
    }
    c = load_config(p, environ=env)
    assert c.quoting.levels == 7
    assert c.truex.order_entry.host == "10.0.0.1"
    assert c.truex.api_secret.reveal() == "s3cr3t-value"
    assert c.kraken.api_secret.reveal() == "k-secret"
    assert not c.truex.client_id


def test_environment_override_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"quoting\.levels: 99 is above the maximum 50"):
        load_config(None, environ={"FASTMM_QUOTING__LEVELS": "99"})
    with pytest.raises(ConfigError, match=r"quoting\.nope: unknown setting"):
        load_config(None, environ={"FASTMM_QUOTING__NOPE": "1"})


def test_secrets_never_show() -> None:
    c = load_config(None, environ={"FASTMM_TRUEX_API_SECRET": "very-secret-text"})
    for text in (repr(c), str(c), repr(c.truex), str(c.truex.api_secret), str(describe(c))):
        assert "very-secret-text" not in text
    with pytest.raises(TypeError):
        pickle.dumps(c.truex.api_secret)
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")


def test_example_config_in_ops_is_current_and_equals_defaults() -> None:
    path = REPO / "ops" / "fastmm.example.toml"
    assert load_config(path, environ={}) == Config()
    assert run_cli("config", "example").stdout == path.read_text(), "regenerate: fastmm config example"


def test_the_latency_harness_fine_tick_config_is_the_defaults_at_a_cent_tick() -> None:
    cfg = load_config(REPO / "bench" / "latency" / "fine_tick.toml", environ={})
    assert cfg.instrument.tick_size == Decimal("0.01")
    assert replace(cfg, instrument=Config().instrument) == Config()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastmm.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=REPO)


def test_cli_config_check_exit_status(tmp_path: Path) -> None:
    ok = run_cli("config", "check", "--config", str(write(tmp_path, "[quoting]\nlevels = 4\n")))
    assert ok.returncode == 0, ok.stderr
    bad = run_cli("config", "check", "--config", str(write(tmp_path, "[quoting]\nlevels = -1\n")))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "fastmm: config error: quoting.levels: -1 is below the minimum 1"]


def test_cli_config_show_hides_secrets() -> None:
    import os

    env = dict(os.environ, FASTMM_TRUEX_API_SECRET="hidden-value-123")
    out = run_cli("config", "show", env=env)
    assert out.returncode == 0, out.stderr
    assert "truex.api_secret" in out.stdout and "<set>" in out.stdout
    assert "hidden-value-123" not in out.stdout + out.stderr


def test_cli_help_lists_commands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    assert "config" in out.stdout


@pytest.mark.parametrize("key, section", [("size_decay", "quoting"), ("coinbase_weight", "pricing"),
                                          ("confidence_threshold", "quoting")])
@pytest.mark.parametrize("literal", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_from_file_and_environment(tmp_path: Path, key: str, section: str,
                                                                   literal: str) -> None:
    """nan passed every range check and then crash-looped the quoter or quoted nothing (issue 16.9)."""
    with pytest.raises(ConfigError, match=f"^{section}.{key}: expected a finite number"):
        load_config(write(tmp_path, f"[{section}]\n{key} = {literal}\n"), environ={})
    with pytest.raises(ConfigError, match=f"^{section}.{key}: expected a finite number"):
        load_config(None, {f"FASTMM_{section.upper()}__{key.upper()}": literal})


def test_misspelt_environment_overrides_are_named_not_silently_ignored(tmp_path: Path) -> None:
    env = {**os.environ, "FASTMM_QUOTING_BASE_SPREAD_BPS": "7", "fastmm_quoting__levels": "2",
           "FASTMM_NOT_A_THING": "1", "FASTMM_QUOTING__LEVELS": "3", "FASTMM_DATA_DIR": "/x"}
    r = run_cli("config", "check", env=env)
    assert r.returncode == 0 and "(3 environment variable(s) ignored)" in r.stdout, r.stdout + r.stderr
    err = r.stderr.splitlines()
    assert any("FASTMM_QUOTING_BASE_SPREAD_BPS: ignored" in ln and "FASTMM_QUOTING__BASE_SPREAD_BPS" in ln
               for ln in err), err
    assert any("fastmm_quoting__levels: ignored: environment overrides are upper case" in ln for ln in err)
    assert any(ln.startswith("FASTMM_NOT_A_THING: ignored") for ln in err)
    assert not any(ln.startswith(("FASTMM_QUOTING__LEVELS", "FASTMM_DATA_DIR")) for ln in err)
    assert len(err) == 3, err


def test_processes_start_is_fork_by_default_and_exec_on_request() -> None:
    assert load_config(None, environ={}).processes.start == "fork"
    assert load_config(None, environ={"FASTMM_PROCESSES__START": "exec"}).processes.start == "exec"
    with pytest.raises(ConfigError, match=r"processes\.start: expected one of 'fork', 'exec'"):
        load_config(None, environ={"FASTMM_PROCESSES__START": "vfork"})
