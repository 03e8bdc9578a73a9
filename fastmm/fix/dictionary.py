"""TrueX's FIXT.1.1 session dictionary as static tables, and the field checks QuickFIX makes with it.

Taken from TrueX_FIXT11.xml (session messages) and TrueX_FIX50SP2.xml (the set of message types and
defined tags); a test compares these tables with the XML files, so no dictionary file is read at run
time. Only session (admin) messages are validated here: application messages are checked by the
venue's decoder, which knows its own fields.

The switches are QuickFIX's (same defaults): ``AllowUnknownMsgFields`` (``allow_unknown_fields``),
``ValidateUserDefinedFields`` (``validate_user_defined_fields``, tags 5000 and up) and
``ValidateFieldsOutOfOrder`` (``validate_fields_out_of_order``, used by the session on the codec's
"header tag after the body" error).
"""

from __future__ import annotations

from fastmm.fix.codec import (
    HEADER_TAGS,
    REJ_INVALID_TAG,
    REJ_REQUIRED_TAG_MISSING,
    REJ_TAG_NOT_DEFINED,
    Message,
)

USER_MIN_TAG = 5000  # QuickFIX's FIELD::UserMin: tags from here on are user-defined

# MsgType -> (required body tags, allowed body tags), from TrueX_FIXT11.xml.
ADMIN_MESSAGES: dict[bytes, tuple[frozenset[int], frozenset[int]]] = {
    b"0": (frozenset(), frozenset({112})),
    b"1": (frozenset({112}), frozenset({112})),
    b"2": (frozenset({7, 16}), frozenset({7, 16})),
    b"3": (frozenset({45}), frozenset({45, 371, 372, 373, 58})),
    b"4": (frozenset({36}), frozenset({123, 36})),
    b"5": (frozenset(), frozenset({1409, 58})),
    b"A": (frozenset({108, 1137}), frozenset({108, 553, 554, 1137, 1409, 58, 141})),
}

# Application message types of TrueX_FIX50SP2.xml.
APP_MSG_TYPES = frozenset({b"8", b"9", b"D", b"F", b"G", b"V", b"W", b"X", b"Y", b"j", b"x", b"y", b"BK"})

MSG_TYPES = frozenset(ADMIN_MESSAGES) | APP_MSG_TYPES

# Every tag either dictionary defines.
DEFINED_TAGS = frozenset({
    6, 7, 8, 9, 10, 11, 14, 15, 16, 17, 18, 31, 32, 34, 35, 36, 37, 38, 39, 40, 41, 43, 44, 45, 49, 52, 54,
    55, 56, 58, 59, 60, 97, 98, 102, 108, 112, 122, 123, 136, 137, 139, 141, 146, 150, 151, 167, 262, 263,
    268, 269, 270, 271, 273, 278, 279, 320, 322, 371, 372, 373, 379, 380, 393, 434, 448, 452, 453, 553, 554,
    559, 560, 851, 870, 871, 872, 880, 893, 980, 1023, 1128, 1137, 1324, 1409, 2362, 2446, 2964,
})

_TRAILER = frozenset({9, 10})


def check_admin(msg: Message, *, allow_unknown_fields: bool = False,
                validate_user_defined_fields: bool = True,
                extra_allowed: frozenset[int] = frozenset()) -> tuple[int, int, str] | None:
    """First problem of a session message's body as ``(SessionRejectReason, RefTagID, text)``, or None.

    An undefined tag is 373=0 (what QuickFIX answers), a defined tag this message does not have 373=2,
    a missing required tag 373=1. ``extra_allowed`` adds tags a dialect accepts (98 on a Logon)."""
    spec = ADMIN_MESSAGES.get(msg.msg_type)
    if spec is None:
        return None
    required, allowed = spec
    seen: set[int] = set()
    for tag, _ in msg.fields:
        if tag in HEADER_TAGS or tag in _TRAILER:
            continue
        seen.add(tag)
        if tag in allowed or tag in extra_allowed:
            continue
        if tag >= USER_MIN_TAG and not validate_user_defined_fields:
            continue
        if allow_unknown_fields:
            continue
        if tag not in DEFINED_TAGS:
            return REJ_INVALID_TAG, tag, f"Invalid tag number {tag}"
        return REJ_TAG_NOT_DEFINED, tag, f"Tag {tag} not defined for this message type"
    missing = required - seen
    if missing:
        tag = min(missing)
        return REJ_REQUIRED_TAG_MISSING, tag, f"Required tag {tag} missing"
    return None
