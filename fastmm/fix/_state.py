"""Rule 1: every state change of a FIX session's lifecycle is in this table; nothing else moves it.

Rule 2: the table knows both roles only through the trigger that starts them (an initiator sends a Logon
on connect, an acceptor waits for one). Sequence-number handling is not a lifecycle change and lives in
the session core.
"""

from __future__ import annotations

from enum import Enum


class State(Enum):
    DISCONNECTED = "disconnected"  # no transport
    LOGON_SENT = "logon_sent"  # initiator: Logon written, waiting for the answer
    AWAIT_LOGON = "await_logon"  # acceptor: connected, waiting for the peer's Logon
    ACTIVE = "active"  # logged on
    LOGOUT_SENT = "logout_sent"  # our Logout written, waiting for the peer's
    CLOSED = "closed"  # the session is over on this connection; the shell must close it


class Trigger(Enum):
    CONNECT_INITIATOR = "connect_initiator"
    CONNECT_ACCEPTOR = "connect_acceptor"
    LOGON_DONE = "logon_done"
    LOGOUT_SEND = "logout_send"
    END = "end"  # logout completed, fatal protocol error, or a timeout
    CONNECTION_LOST = "connection_lost"


class InvalidState(RuntimeError):
    """An action the current state does not allow (e.g. sending an order before the Logon)."""


_ANY_CONNECTED = {Trigger.END: State.CLOSED, Trigger.CONNECTION_LOST: State.DISCONNECTED}

TRANSITIONS: dict[State, dict[Trigger, State]] = {
    State.DISCONNECTED: {Trigger.CONNECT_INITIATOR: State.LOGON_SENT,
                         Trigger.CONNECT_ACCEPTOR: State.AWAIT_LOGON,
                         Trigger.CONNECTION_LOST: State.DISCONNECTED},
    State.LOGON_SENT: {Trigger.LOGON_DONE: State.ACTIVE, **_ANY_CONNECTED},
    State.AWAIT_LOGON: {Trigger.LOGON_DONE: State.ACTIVE, **_ANY_CONNECTED},
    State.ACTIVE: {Trigger.LOGOUT_SEND: State.LOGOUT_SENT, **_ANY_CONNECTED},
    State.LOGOUT_SENT: {**_ANY_CONNECTED},
    State.CLOSED: {Trigger.END: State.CLOSED, Trigger.CONNECTION_LOST: State.DISCONNECTED},
}


def next_state(state: State, trigger: Trigger) -> State:
    try:
        return TRANSITIONS[state][trigger]
    except KeyError:
        raise InvalidState(f"{trigger.value} in state {state.value}") from None
