"""Where the recorded data lives: ``$FASTMM_DATA_DIR`` or ``<repo>/../shared/data``.

The repository root is the parent of the ``fastmm`` package folder, so the default works from any
working directory and in CI's fresh clone (which has ``shared/`` beside it).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "FASTMM_DATA_DIR"
BINANCE_CAPTURE = "binance-spot-btcusdt-20240808"


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent.parent


def data_dir(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    text = env.get(ENV)
    if text:
        p = Path(text)
        return p if p.is_absolute() else (repo_root() / p).resolve()
    return (repo_root() / ".." / "shared" / "data").resolve()


def binance_capture_dir(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    return data_dir(environ) / BINANCE_CAPTURE
