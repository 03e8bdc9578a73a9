"""Fixtures of the operations tests: a paper venue set shared by the module, a stopped engine per test.

The venue simulators run in a background thread of the test process (the pattern of tests/e2e), on
ephemeral loopback ports written into a real config file; the engine itself is started, stopped and
killed only by the runbooks' own commands. Every process they start is ended by pid at teardown and the
instance's shared-memory segments are unlinked, also when a test fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from ops_helpers import (
    BIN,
    Paper,
    free_port,
    install_standins,
    paper_secrets,
    runbook_blocks,
    standin_env,
    write_secrets,
)

from fastmm.config import load_config
from fastmm.shm import list_segments, unlink_instance
from fastmm.sim import venues as sim_venues


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paper]:
    root = tmp_path_factory.mktemp("ops")
    creds = paper_secrets()
    instance = f"ops{os.getpid()}"
    sim_env = {**creds, "FASTMM_INSTANCE__NAME": instance, "FASTMM_SIM__SPEED": "3",
               "FASTMM_SIM__TAKER_PROBABILITY": "0.5", "FASTMM_SIM__TAKER_REACH_BPS": "0"}
    sim_cfg = load_config(None, sim_env)
    sims, venues = sim_venues.start_in_thread(sim_cfg)
    a = venues.addresses
    config_path = root / "fastmm.toml"
    config_path.write_text(f"""
[instance]
name = "{instance}"
state_dir = "{root / 'var'}"
log_level = "INFO"

[quoting]
model = "ladder"
levels = 5
base_spread_bps = "2"

[processes]
heartbeat_timeout_ms = 2000

[hedge]
limit_timeout_s = 0.5

[truex.order_entry]
port = {a['truex order entry'].rsplit(':', 1)[1]}

[truex.market_data]
port = {a['truex market data'].rsplit(':', 1)[1]}

[coinbase]
ws_url = "{a['coinbase ws']}"

[kraken]
rest_url = "{a['kraken rest']}"
ws_url = "{a['kraken ws']}"
""")
    secrets_path = root / "secrets.env"
    write_secrets(secrets_path, creds)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMM_")}
    metrics_port = free_port()
    install_standins(root / "bin")             # systemctl, journalctl: see systemd_standin.py
    env.update({
        "PATH": f"{root / 'bin'}:{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        "FASTMM_CONFIG": str(config_path),
        "FASTMM_SECRETS": str(secrets_path),
        "FASTMM_STATE": str(root / "var" / instance),
        "FASTMM_LOG": str(root / "fastmm.log"),
        "FASTMM_METRICS_PORT": str(metrics_port),
        **standin_env(root, config_path, secrets_path, metrics_port),
    })
    cfg = load_config(config_path, {})
    blocks = {(b.file, b.name): b for b in runbook_blocks() if b.name}
    p = Paper(root, config_path, secrets_path, cfg, sims, venues, env, blocks, systemd_state=root / "systemd")
    try:
        yield p
    finally:
        try:
            p.end_processes()
        finally:
            unlink_instance(instance)
            sims.close()
        assert list_segments(instance) == []


@pytest.fixture
def stopped(paper: Paper) -> Iterator[Paper]:
    """The paper venues with no engine running before and after the test (ended by pid if needed)."""
    paper.end_processes()
    unlink_instance(paper.instance)
    yield paper
    paper.end_processes()
    unlink_instance(paper.instance)
