"""TLS for the FIX sessions: against QuickFIX's SSL acceptor (mutual TLS, TrueX's dictionaries) and the
TrueX simulator behind TLS; a certificate that does not verify is a clear error, never plain text.

Certificates are made at test time with the openssl CLI (tests/tls_certs.py)."""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CLIENT_ID, KEY_ID, SECRET, QfPeer, field, msg_type

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tls_certs import Certs, make_certs

from fastmm.backoff import Backoff
from fastmm.config import ConfigError, InstrumentConfig, TlsConfig, load_config
from fastmm.event_loop import run
from fastmm.fix._state import State
from fastmm.fix.session import AppMessage, Event, FixSession, SessionSettings, session_options
from fastmm.fix.store import MemorySeqStore
from fastmm.fix.transport import FixInitiator, TlsVerifyError, client_ssl_context, server_ssl_context
from fastmm.instrument import Instrument
from fastmm.sim.truex import TruexSimSettings
from fastmm.sim.truex_server import TruexSimServer
from fastmm.venues.truex.auth import LogonCredentials
from fastmm.venues.truex.codec import BUY, ExecutionReport, MarketDataSnapshot, TruexCodec

INSTRUMENT = Instrument.from_config(InstrumentConfig())
OE = "oe:TRUEX_SIM_OE:FASTMM_OE"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("tls"))


class TlsSide:
    def __init__(self, port: int, sender: str, target: str, ctx: ssl.SSLContext | None, *, server_name: str = "",
                 key: str = KEY_ID, secret: str = SECRET, client_id: str = CLIENT_ID,
                 settings: SessionSettings | None = None) -> None:
        self.events: list[Event] = []
        self.codec = TruexCodec(INSTRUMENT, client_id)
        self.session = FixSession(settings or SessionSettings(sender, target, heartbeat_s=1),
                                  MemorySeqStore(), logon_fields=LogonCredentials(key, secret),
                                  decoder=self.codec.decode)
        self.ini = FixInitiator(self.session, "127.0.0.1", port, lambda c, e: self.events.append(e),
                                backoff=Backoff(0.05, 0.2, seed=1), ssl_context=ctx, server_hostname=server_name)
        self.task: asyncio.Task[None] | None = None

    def records(self, kind: type) -> list[object]:
        return [e.record for e in self.events if isinstance(e, AppMessage) and isinstance(e.record, kind)]

    async def until(self, cond: Callable[[], bool], timeout: float = 5.0) -> None:
        end = asyncio.get_running_loop().time() + timeout
        while not cond():
            assert asyncio.get_running_loop().time() < end, f"timed out; events: {self.events[-6:]}"
            await asyncio.sleep(0.01)

    async def start(self) -> None:
        self.task = asyncio.create_task(self.ini.run())
        await self.ini.wait_logged_on(10)

    async def stop(self) -> None:
        await self.ini.stop("done")
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)

    def tls_version(self) -> str:
        assert self.ini.conn is not None and self.ini.conn._transport is not None
        obj = self.ini.conn._transport.get_extra_info("ssl_object")
        assert obj is not None, "not a TLS connection"
        return str(obj.version())


def test_tls_with_a_client_certificate_to_a_quickfix_ssl_acceptor(qf_peer: Callable[..., QfPeer], certs: Certs) -> None:
    peer = qf_peer([OE], tls=f"{certs.server_cert},{certs.server_key},{certs.ca}")
    ctx = client_ssl_context(TlsConfig(enabled=True, ca_file=str(certs.ca), cert_file=str(certs.client_cert),
                                       key_file=str(certs.client_key), min_version="TLSv1.2"))

    async def main() -> None:
        oe = TlsSide(peer.port, "FASTMM_OE", "TRUEX_SIM_OE", ctx, server_name="localhost")
        await oe.start()
        assert oe.tls_version() in ("TLSv1.2", "TLSv1.3")
        oe.ini.send(b"D", oe.codec.new_order_single("tls1", BUY, 10, 120000))
        await oe.until(lambda: len(oe.records(ExecutionReport)) == 1)
        await oe.stop()
        await peer.wait(lambda e: e["ev"] == "logout", 5)
        assert peer.find(lambda e: e["ev"] == "auth_ok") is not None
        d = await peer.wait(lambda e: e["ev"] == "in" and msg_type(e) == "D", 5)
        assert field(d, 11) == "tls1"
        assert peer.all(lambda e: e["ev"] in ("in", "out") and msg_type(e) in ("3", "j")) == []

    run(main())


@pytest.mark.parametrize("case", ["wrong_ca", "wrong_name"])
def test_certificate_that_does_not_verify_is_a_clear_error_and_nothing_is_sent(
        qf_peer: Callable[..., QfPeer], certs: Certs, case: str) -> None:
    peer = qf_peer([OE], tls=f"{certs.server_cert},{certs.server_key}")
    ca = certs.other_ca if case == "wrong_ca" else certs.ca
    name = "venue.example" if case == "wrong_name" else "localhost"
    ctx = client_ssl_context(TlsConfig(enabled=True, ca_file=str(ca)))

    async def main() -> None:
        oe = TlsSide(peer.port, "FASTMM_OE", "TRUEX_SIM_OE", ctx, server_name=name)
        with pytest.raises(TlsVerifyError) as err:
            await asyncio.wait_for(oe.ini.run(), 10)
        text = str(err.value)
        assert f"TLS certificate of '{name}' did not verify" in text
        assert ("unable to get local issuer certificate" in text if case == "wrong_ca"
                else "Hostname mismatch" in text)
        assert oe.ini.connects == 0 and oe.session.state is State.DISCONNECTED
        await asyncio.sleep(0.2)
        assert peer.find(lambda e: e["ev"] in ("in", "logon")) is None  # no Logon, in plain text or at all

    run(main())


def test_truex_simulator_behind_tls_with_settings_from_config(tmp_path: Path, certs: Certs) -> None:
    env = {"FASTMM_TRUEX__ORDER_ENTRY__TLS__ENABLED": "true",
           "FASTMM_TRUEX__ORDER_ENTRY__TLS__CA_FILE": str(certs.ca),
           "FASTMM_TRUEX__ORDER_ENTRY__TLS__SERVER_NAME": "localhost",
           "FASTMM_TRUEX__ORDER_ENTRY__TLS__CERT_FILE": str(certs.client_cert),
           "FASTMM_TRUEX__ORDER_ENTRY__TLS__KEY_FILE": str(certs.client_key),
           "FASTMM_TRUEX__ORDER_ENTRY__TARGET_COMP_ID": "TRUEX_UAT_OE",
           "FASTMM_TRUEX__ORDER_ENTRY__HEARTBEAT_S": "1",
           "FASTMM_TRUEX__MARKET_DATA__TLS__ENABLED": "true",
           "FASTMM_TRUEX__MARKET_DATA__TLS__CA_FILE": str(certs.ca),
           "FASTMM_TRUEX__MARKET_DATA__TLS__CERT_FILE": str(certs.client_cert),
           "FASTMM_TRUEX__MARKET_DATA__TLS__KEY_FILE": str(certs.client_key),
           "FASTMM_TRUEX__MARKET_DATA__TLS__MIN_VERSION": '"TLSv1.3"'}
    cfg = load_config(None, environ=env)
    oe_cfg, md_cfg = cfg.truex.order_entry, cfg.truex.market_data
    sim_settings = TruexSimSettings(api_key_id="sim-key", api_secret="sim-secret")

    async def main() -> None:
        sim = TruexSimServer(INSTRUMENT, [], sim_settings, heartbeat_s=1)
        oe_port, md_port = await sim.start(ssl_context=server_ssl_context(  # mutual TLS: client certs required
            str(certs.server_cert), str(certs.server_key), client_ca_file=str(certs.ca)))
        try:
            oe = TlsSide(oe_port, oe_cfg.sender_comp_id, oe_cfg.target_comp_id, client_ssl_context(oe_cfg.tls),
                         server_name=oe_cfg.tls.server_name, key="sim-key", secret="sim-secret",
                         settings=SessionSettings(oe_cfg.sender_comp_id, oe_cfg.target_comp_id,
                                                  **session_options(oe_cfg)))
            md = TlsSide(md_port, md_cfg.sender_comp_id, md_cfg.target_comp_id, client_ssl_context(md_cfg.tls),
                         key="sim-key", secret="sim-secret",
                         settings=SessionSettings(md_cfg.sender_comp_id, md_cfg.target_comp_id,
                                                  **session_options(md_cfg)))
            await oe.start()
            await md.start()
            assert oe.tls_version() in ("TLSv1.2", "TLSv1.3") and md.tls_version() == "TLSv1.3"
            md.ini.send(b"V", md.codec.market_data_request("md-tls"))
            await md.until(lambda: len(md.records(MarketDataSnapshot)) >= 1)
            oe.ini.send(b"D", oe.codec.new_order_single("tls-sim-1", BUY, 10, 120000))
            await oe.until(lambda: len(oe.records(ExecutionReport)) >= 1)
            er = oe.records(ExecutionReport)[0]
            assert isinstance(er, ExecutionReport) and er.cl_ord_id == "tls-sim-1"
            assert sim.logons == 1 and sim.bad_logons == 0 and sim.md_requests == 1
            await oe.stop()
            await md.stop()
        finally:
            await sim.stop()

    run(main())


@pytest.mark.parametrize(("env", "msg"), [
    ({"FASTMM_TRUEX__ORDER_ENTRY__TLS__CA_FILE": "/etc/hostname"}, "set while truex.order_entry.tls.enabled"),
    ({"FASTMM_TRUEX__MARKET_DATA__TLS__ENABLED": "true",
      "FASTMM_TRUEX__MARKET_DATA__TLS__CA_FILE": "/nonexistent/ca.pem"}, "is not a file"),
    ({"FASTMM_TRUEX__ORDER_ENTRY__TLS__ENABLED": "true",
      "FASTMM_TRUEX__ORDER_ENTRY__TLS__KEY_FILE": "/etc/hostname"}, "key_file: set without"),
    ({"FASTMM_TRUEX__ORDER_ENTRY__TLS__MIN_VERSION": '"TLSv1.1"'}, "min_version"),
])
def test_tls_settings_that_could_fall_back_or_not_load_are_config_errors(env: dict[str, str], msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        load_config(None, environ=env)


def test_unreadable_client_certificate_fails_at_start(tmp_path: Path, certs: Certs) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ssl.SSLError):
        client_ssl_context(TlsConfig(enabled=True, ca_file=str(certs.ca), cert_file=str(bad)))
    assert client_ssl_context(TlsConfig()) is None


def test_simulator_with_mutual_tls_refuses_a_client_without_certificate(certs: Certs) -> None:
    async def main() -> None:
        sim = TruexSimServer(INSTRUMENT, [], TruexSimSettings(api_key_id="sim-key", api_secret="sim-secret"),
                             heartbeat_s=1)
        oe_port, _ = await sim.start(ssl_context=server_ssl_context(
            str(certs.server_cert), str(certs.server_key), client_ca_file=str(certs.ca)))
        try:
            oe = TlsSide(oe_port, "FASTMM", "TRUEX_UAT_OE", client_ssl_context(
                TlsConfig(enabled=True, ca_file=str(certs.ca))), key="sim-key", secret="sim-secret")
            task = asyncio.create_task(oe.ini.run())
            await asyncio.sleep(1.5)
            assert not oe.ini.logged_on and sim.logons == 0
            await oe.ini.stop()
            await asyncio.wait_for(task, 5)
        finally:
            await sim.stop()

    run(main())
