"""ops/add-instrument.md: every command block, verbatim, against a config of a new instance whose
journals a real PostgreSQL receives; the TOML sample passes `fastmm config check`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from db_journals import write_session

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "ops"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(md: Path) -> dict[str, str]:
    out = {}
    for lang, text in BLOCK.findall(md.read_text()):
        m = re.match(r"# tested: ([a-z0-9-]+)\n", text)
        if lang == "sh" and m:
            out[m.group(1)] = text
        elif lang == "toml":
            out["toml"] = text
    return out


def test_add_instrument_runbook(tmp_path: Path, db: str) -> None:
    book = blocks(OPS / "add-instrument.md")
    env_block = blocks(OPS / "README.md")["env"]
    assert {"check", "database", "shipped", "toml"} <= set(book)
    sample = book["toml"].replace("postgresql://fastmm@db.internal:5432/fastmm", db)
    sample = sample.replace('name = "eth"', f'name = "eth"\nstate_dir = "{tmp_path}"')
    config = tmp_path / "eth.toml"
    config.write_text(sample)
    secrets = tmp_path / "eth.env"
    secrets.write_text(f"FASTMM_DB_PASSWORD={os.environ['FASTMM_DB_PASSWORD']}\n")
    secrets.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMM_")}
    env.update(FASTMM_CONFIG=str(config), FASTMM_SECRETS=str(secrets), FASTMM_STATE=str(tmp_path / "eth"),
               PATH=f"{Path(sys.executable).parent}:{env['PATH']}")

    def run(name: str) -> str:
        p = subprocess.run(["bash", "-c", "set -euo pipefail\n" + env_block + "\n" + book[name]], env=env,
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert p.returncode == 0, f"[{name}] exited {p.returncode}: {p.stdout}{p.stderr}"
        return p.stdout + p.stderr

    out = run("check")
    assert "ok" in out and "ETH-PYUSD" in out and re.search(r"ship\.enabled\s+True", out)
    assert "schema at version" in run("database")
    # the engine ran and its shipper shipped (here: a written journal and `fastmm db ship --once`)
    write_session(tmp_path / "eth", 30, mid_ticks=50_000)
    p = subprocess.run([sys.executable, "-m", "fastmm.cli", "db", "ship", "-c", str(config), "--once"],
                       env={**env, "FASTMM_DB_PASSWORD": os.environ["FASTMM_DB_PASSWORD"]}, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = run("shipped")
    assert re.search(r"quoter\s+journal\s+(\d+)\s+shipped\s+\1\s+lag 0", out), out
    assert "eth: " in out and (tmp_path / "eth" / "firm-report" / "firm.html").exists()
