"""TrueX logon HMAC and REST signature: the venue facts' vectors."""

from __future__ import annotations

import pytest

from fastmm.config import Secret
from fastmm.fix.codec import Encoder, FrameParser, Message
from fastmm.venues.truex.auth import (
    LogonCredentials,
    LogonVerifier,
    logon_password,
    rest_headers,
    rest_signature,
)

KEY = "00000000-0000-0000-0000-000000000000"


def test_logon_hmac_vector() -> None:
    pw = logon_password("test-secret", "20250101-00:00:00.000", 1, "CLIENT_UAT", "TRUEX_UAT_GW", KEY)
    assert pw == "W1nIidM0oV60x14okC25R2lUDBZl3dYrEXNBwUZbnAQ="
    assert logon_password(Secret("test-secret"), b"20250101-00:00:00.000", 1, "CLIENT_UAT", "TRUEX_UAT_GW",
                          Secret(KEY)) == pw


def test_rest_signature_vector() -> None:
    assert rest_signature("test-secret", 1700000000, "GET", "/api/v1/instrument") == \
        "85RJYe+bPsabK0sxYcc262BT7kAZEziWrjETKnSYGtE="
    h = rest_headers(KEY, "test-secret", 1700000000, "get", "/api/v1/instrument")
    assert h["x-truex-auth-signature"] == "85RJYe+bPsabK0sxYcc262BT7kAZEziWrjETKnSYGtE="
    assert h["x-truex-auth-timestamp"] == "1700000000" and h["x-truex-auth-token"] == KEY


def test_credentials_hook_and_verifier_agree() -> None:
    creds = LogonCredentials(KEY, "test-secret")
    assert "test-secret" not in repr(creds)
    body = b"108=30\x01" + creds(b"20250101-00:00:00.000", 1, "CLIENT_UAT", "TRUEX_UAT_GW") + b"1137=9\x01"
    raw = Encoder("FIXT.1.1", "CLIENT_UAT", "TRUEX_UAT_GW").encode(b"A", 1, b"20250101-00:00:00.000", body)
    (msg,) = FrameParser().feed(raw)
    assert isinstance(msg, Message)
    assert msg.get(554) == b"W1nIidM0oV60x14okC25R2lUDBZl3dYrEXNBwUZbnAQ="
    assert LogonVerifier({KEY: "test-secret"})(msg) is None
    assert LogonVerifier({KEY: "other"})(msg) == "Authentication failed"
    assert LogonVerifier({"someone-else": "test-secret"})(msg) == "Authentication failed"


def test_missing_credentials_are_refused() -> None:
    with pytest.raises(ValueError, match="FASTMM_TRUEX_API_KEY_ID"):
        LogonCredentials("", "x")
