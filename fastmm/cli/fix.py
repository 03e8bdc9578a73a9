"""`fastmm fix connect`: log on to a FIX peer (TrueX or the simulator) and keep the session up.

It runs exactly the engine's code (:class:`~fastmm.fix.session.FixSession` under
:class:`~fastmm.fix.transport.FixInitiator`, TrueX logon HMAC, TrueX decoder), prints every message in
and out on stdout with tag names (the password masked), reconnects with backoff after a loss, and on
Ctrl-C or SIGTERM logs out, waits for the peer's Logout and exits 0. Credentials come from
FASTMM_TRUEX_API_KEY_ID / FASTMM_TRUEX_API_SECRET through :func:`fastmm.config.load_config`; sequence
numbers persist where the engine keeps them (:func:`fastmm.venues.truex.factory.session_store_path`), so
with the engine's CompIDs it continues the engine's sequence; ``--reset`` asks for 141=Y.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

from fastmm.backoff import Backoff
from fastmm.config import ConfigError, load_config
from fastmm.event_loop import run
from fastmm.fix.names import readable
from fastmm.fix.session import (
    DisconnectWanted,
    Event,
    GapDetected,
    LoggedOn,
    LoggedOut,
    SessionRejectReceived,
    SessionRejectSent,
)
from fastmm.fix.store import StoreError
from fastmm.fix.transport import FixConnection, TlsVerifyError
from fastmm.instrument import Instrument
from fastmm.logs import setup_logging
from fastmm.venues.truex import factory as truex_sessions
from fastmm.venues.truex.codec import TruexCodec


def _stamp() -> str:
    t = time.time()
    return time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}"


def _print(direction: str, frame: bytes) -> None:
    print(f"{_stamp()} {direction} {readable(frame)}", flush=True)


def _note(text: str) -> None:
    print(f"{_stamp()} --  {text}", flush=True)


def _on_event(conn: FixConnection, ev: Event) -> None:
    if isinstance(ev, LoggedOn):
        _note(f"logged on (HeartBtInt {ev.heartbeat_s} s, reset={ev.reset}, next out {ev.next_sender}, "
              f"next in {ev.next_target})")
    elif isinstance(ev, LoggedOut):
        _note(f"logged out ({'by peer' if ev.by_peer else 'by us'}){': ' + ev.text if ev.text else ''}")
    elif isinstance(ev, DisconnectWanted):
        _note(f"disconnecting: {ev.reason}")
    elif isinstance(ev, GapDetected):
        _note(f"sequence gap: expected {ev.expected}, received {ev.received}; ResendRequest sent")
    elif isinstance(ev, SessionRejectSent | SessionRejectReceived):
        _note(f"session reject {'sent' if isinstance(ev, SessionRejectSent) else 'received'}: {ev}")


async def _connect(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    tx = cfg.truex
    if not tx.api_key_id or not tx.api_secret:
        raise ConfigError("truex.api_key_id/api_secret: set FASTMM_TRUEX_API_KEY_ID and "
                          "FASTMM_TRUEX_API_SECRET")
    fcfg = tx.order_entry
    if args.heartbeat is not None and not 1 <= args.heartbeat <= 3600:
        raise ConfigError(f"--heartbeat: {args.heartbeat} is outside 1 .. 3600")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise ConfigError(f"--port: {args.port} is outside 1 .. 65535")
    codec = TruexCodec(Instrument.from_config(cfg.instrument), tx.client_id.reveal())
    try:
        # the engine's own session builder: with the engine's CompIDs this continues its sequence store
        session = truex_sessions.session(cfg, fcfg, app_msg_types=None, decoder=codec.decode,
                                         sender=args.sender, target=args.target, heartbeat_s=args.heartbeat,
                                         reset_on_logon=args.reset)
    except StoreError as e:
        raise ConfigError(f"instance.state_dir: {e}") from None
    settings, store = session.settings, session.store
    session.on_frame_in = lambda frame: _print("IN ", frame)
    initiator = truex_sessions.initiator(session, fcfg, _on_event, host=args.host, port=args.port,
                                         backoff=Backoff(seed=args.seed),
                                         trace_out=lambda frame: _print("OUT", frame))
    loop = asyncio.get_running_loop()
    stop_task: list[asyncio.Task[None]] = []

    def on_signal(signame: str) -> None:
        if not stop_task:
            _note(f"{signame}: logging out")
            stop_task.append(loop.create_task(initiator.stop("")))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    _note(f"connecting to {initiator.host}:{initiator.port} as {settings.sender_comp_id} -> "
          f"{settings.target_comp_id}")
    try:
        await initiator.run()
        if stop_task:
            await stop_task[0]
    except TlsVerifyError as e:
        _note(f"error: {e}")
        return 2
    finally:
        store.close()
    _note("stopped")
    return 0


def _cmd_connect(args: argparse.Namespace) -> int:
    setup_logging("INFO")
    return run(_connect(args))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fix", help="FIX session tools")
    fsub = p.add_subparsers(dest="fix_command", metavar="ACTION", required=True)
    c = fsub.add_parser("connect",
                        help="log on, keep the session up and print every message; Ctrl-C logs out")
    c.add_argument("--host", help="peer host (default: truex.order_entry.host)")
    c.add_argument("--port", type=int, help="peer port (default: truex.order_entry.port)")
    c.add_argument("--sender", help="our SenderCompID (default: truex.order_entry.sender_comp_id)")
    c.add_argument("--target", help="peer's CompID (default: truex.order_entry.target_comp_id)")
    c.add_argument("--heartbeat", type=int, metavar="N", help="HeartBtInt in seconds")
    c.add_argument("--reset", action="store_true", help="ask for sequence numbers reset (141=Y)")
    c.add_argument("--seed", type=int, default=None, help="seed of the reconnect jitter")
    c.add_argument("--config", "-c", metavar="FILE", help="TOML config file (defaults when omitted)")
    c.set_defaults(handler=_cmd_connect)


if __name__ == "__main__":  # pragma: no cover
    from fastmm.cli import main

    sys.exit(main(["fix", *sys.argv[1:]]))
