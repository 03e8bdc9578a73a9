"""TrueX authentication: the FIX Logon password (553/554) and the REST request signature.

Both are base64 (not hex) HMAC-SHA256 keyed with the API secret *as UTF-8 text* (it is not
base64-decoded first), per TrueX's official sample client (venue facts section 1):

* Logon: ``base64(HMAC(secret, SendingTime + "A" + MsgSeqNum + SenderCompID + TargetCompID + key id))``;
  SendingTime must equal tag 52 of the same Logon byte for byte, so the session passes it in.
* REST: ``base64(HMAC(secret, timestamp + METHOD + path + body))`` in ``x-truex-auth-signature``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from fastmm.config import Secret
from fastmm.fix.codec import Message, fields


def _text(v: str | Secret) -> str:
    return v.reveal() if isinstance(v, Secret) else v


def logon_password(secret: str | Secret, sending_time: str | bytes, seq: int, sender: str, target: str,
                   key_id: str | Secret) -> str:
    st = sending_time.decode("ascii") if isinstance(sending_time, bytes) else sending_time
    msg = f"{st}A{seq}{sender}{target}{_text(key_id)}".encode()
    digest = hmac.new(_text(secret).encode(), msg, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def rest_signature(secret: str | Secret, timestamp: int | str, method: str, path: str, body: str = "") -> str:
    msg = f"{timestamp}{method.upper()}{path}{body}".encode()
    return base64.b64encode(hmac.new(_text(secret).encode(), msg, hashlib.sha256).digest()).decode("ascii")


def rest_headers(key_id: str | Secret, secret: str | Secret, timestamp: int, method: str, path: str,
                 body: str = "") -> dict[str, str]:
    return {"x-truex-auth-token": _text(key_id), "x-truex-auth-timestamp": str(timestamp),
            "x-truex-auth-signature": rest_signature(secret, timestamp, method, path, body)}


class LogonCredentials:
    """The session's ``logon_fields`` hook for an initiator: adds 553 (key id) and 554 (password)."""

    __slots__ = ("_key_id", "_secret")

    def __init__(self, key_id: str | Secret, secret: str | Secret) -> None:
        if not _text(key_id) or not _text(secret):
            raise ValueError("TrueX logon needs an API key id and secret (FASTMM_TRUEX_API_KEY_ID / "
                             "FASTMM_TRUEX_API_SECRET)")
        self._key_id = key_id if isinstance(key_id, Secret) else Secret(key_id)
        self._secret = secret if isinstance(secret, Secret) else Secret(secret)

    def __call__(self, sending_time: bytes, seq: int, sender: str, target: str) -> bytes:
        pw = logon_password(self._secret, sending_time, seq, sender, target, self._key_id)
        return fields([(553, self._key_id.reveal()), (554, pw)])

    def __repr__(self) -> str:
        return "LogonCredentials(***)"


class LogonVerifier:
    """The session's ``authenticate`` hook for an acceptor (the simulator): checks 553 and 554."""

    __slots__ = ("_keys",)

    def __init__(self, keys: dict[str, str | Secret]) -> None:
        self._keys = {k: _text(v) for k, v in keys.items()}

    def __call__(self, msg: Message) -> str | None:
        key = msg.get(553)
        pw = msg.get(554)
        if key is None or pw is None:
            return "Authentication failed"
        secret = self._keys.get(key.decode("ascii", "replace"))
        if secret is None:
            return "Authentication failed"
        want = logon_password(secret, msg.sending_time, msg.seq, msg.sender.decode("ascii", "replace"),
                              msg.target.decode("ascii", "replace"), key.decode("ascii"))
        return None if hmac.compare_digest(want.encode(), pw) else "Authentication failed"
