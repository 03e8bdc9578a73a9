"""TrueX FIX sessions from config: the one place that puts a sequence store, the session settings, the
FixSession (logon HMAC, TrueX decoder) and its FixInitiator together.

The quoter, feed-truex-md, ``ops cancel-orders``, ``fastmm fix connect`` and the latency bench all build
here, so a session under the same CompIDs is the same session whoever opens it: its sequence numbers live
in :func:`session_store_path` (``<state>/fix/<sender>-<target>.seq``), and ``fastmm fix connect`` with the
engine's CompIDs continues the engine's numbers. A store left by an earlier release at
``<state>/fix.<sender>-<target>.seq`` is moved there on first use, so an upgrade keeps its sequence.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from fastmm.backoff import Backoff
from fastmm.config import Config, FixSessionConfig
from fastmm.fix.session import Decoder, FixSession, SeqStore, SessionSettings, session_options
from fastmm.fix.store import FileSeqStore, store_path
from fastmm.fix.transport import FixInitiator, Handler, client_ssl_context
from fastmm.venues.truex.auth import LogonCredentials
from fastmm.venues.truex.codec import MARKET_DATA_TYPES, ORDER_ENTRY_TYPES

log = logging.getLogger(__name__)


def session_store_path(cfg: Config, sender: str, target: str) -> Path:
    """Where the session ``sender`` -> ``target`` of this instance keeps its sequence numbers."""
    return store_path(cfg.state_path, sender, target)


def open_store(cfg: Config, sender: str, target: str, *, fsync: bool = False) -> FileSeqStore:
    """The session's sequence store (created at 1/1 when new); moves a store an earlier release kept at
    ``<state>/fix.<sender>-<target>.seq`` into place first."""
    path = session_store_path(cfg, sender, target)
    legacy = cfg.state_path / f"fix.{sender}-{target}.seq"
    if not path.exists() and legacy.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(legacy, path)
        log.warning("FIX sequence store moved from %s to %s", legacy, path)
    return FileSeqStore(path, fsync=fsync)


def session(cfg: Config, fcfg: FixSessionConfig, *, app_msg_types: frozenset[bytes] | None,
            decoder: Decoder | None, sender: str | None = None, target: str | None = None,
            heartbeat_s: int | None = None, reset_on_logon: bool | None = None,
            wrap_store: Callable[[FileSeqStore], SeqStore] | None = None) -> FixSession:
    """A TrueX FIX session from ``fcfg`` (order entry or market data), logging on with the instance's
    API key; the keyword arguments replace single settings (``fastmm fix connect``'s options)."""
    opts = session_options(fcfg) | {"app_msg_types": app_msg_types}
    if heartbeat_s:
        opts["heartbeat_s"] = heartbeat_s
    if reset_on_logon is not None:
        opts["reset_on_logon"] = reset_on_logon
    settings = SessionSettings(sender or fcfg.sender_comp_id, target or fcfg.target_comp_id, **opts)
    logon = LogonCredentials(cfg.truex.api_key_id, cfg.truex.api_secret)   # raises before a store is open
    file_store = open_store(cfg, settings.sender_comp_id, settings.target_comp_id, fsync=fcfg.seq_store_fsync)
    # the quoter wraps it: CommittedTargetStore, durable only behind its journal
    store: SeqStore = wrap_store(file_store) if wrap_store is not None else file_store
    return FixSession(settings, store, logon_fields=logon, decoder=decoder)


def initiator(fs: FixSession, fcfg: FixSessionConfig, on_event: Handler | None, *, host: str | None = None,
              port: int | None = None, backoff: Backoff | None = None,
              trace_out: Callable[[bytes], None] | None = None) -> FixInitiator:
    """The shell that connects ``fs`` to ``fcfg``'s host and port (or the ones given) and reconnects,
    over TLS when ``fcfg.tls`` says so (a certificate that does not verify ends ``run()``, no plain text)."""
    return FixInitiator(fs, host or fcfg.host, port or fcfg.port, on_event,
                        connect_timeout_s=fcfg.connect_timeout_s, backoff=backoff, trace_out=trace_out,
                        ssl_context=client_ssl_context(fcfg.tls), server_hostname=fcfg.tls.server_name)


def order_entry(cfg: Config, decoder: Decoder | None, on_event: Handler | None, *,
                wrap_store: Callable[[FileSeqStore], SeqStore] | None = None) -> FixInitiator:
    """The engine's order-entry session (``truex.order_entry``), ready to ``run()``."""
    oe = cfg.truex.order_entry
    fs = session(cfg, oe, app_msg_types=ORDER_ENTRY_TYPES, decoder=decoder, wrap_store=wrap_store)
    return initiator(fs, oe, on_event)


def market_data(cfg: Config, decoder: Decoder | None, on_event: Handler | None) -> FixInitiator:
    """The engine's market-data session (``truex.market_data``), ready to ``run()``."""
    md = cfg.truex.market_data
    return initiator(session(cfg, md, app_msg_types=MARKET_DATA_TYPES, decoder=decoder), md, on_event)
