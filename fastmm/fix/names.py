"""Tag and MsgType names of TrueX's dictionaries, for readable traces (``fastmm fix connect``).

Taken from TrueX_FIXT11.xml and TrueX_FIX50SP2.xml (plus ExecInst 18, used by third parties); a static
table so that no dictionary file is needed at run time. Secrets (Password 554) are masked.
"""

from __future__ import annotations

from fastmm.fix.codec import SOH

TAG_NAMES: dict[int, str] = {
    6: "AvgPx", 7: "BeginSeqNo", 8: "BeginString", 9: "BodyLength", 10: "CheckSum", 11: "ClOrdID",
    14: "CumQty", 15: "Currency", 16: "EndSeqNo", 17: "ExecID", 18: "ExecInst", 31: "LastPx",
    32: "LastQty", 34: "MsgSeqNum", 35: "MsgType", 36: "NewSeqNo", 37: "OrderID", 38: "OrderQty",
    39: "OrdStatus", 40: "OrdType", 41: "OrigClOrdID", 43: "PossDupFlag", 44: "Price", 45: "RefSeqNum",
    49: "SenderCompID", 52: "SendingTime", 54: "Side", 55: "Symbol", 56: "TargetCompID", 58: "Text",
    59: "TimeInForce", 60: "TransactTime", 97: "PossResend", 98: "EncryptMethod", 102: "CxlRejReason",
    108: "HeartBtInt", 112: "TestReqID", 122: "OrigSendingTime", 123: "GapFillFlag", 136: "NoMiscFees",
    137: "MiscFeeAmt", 139: "MiscFeeType", 141: "ResetSeqNumFlag", 146: "NoRelatedSym", 150: "ExecType",
    151: "LeavesQty", 167: "SecurityType", 262: "MDReqID", 263: "SubscriptionRequestType",
    268: "NoMDEntries", 269: "MDEntryType", 270: "MDEntryPx", 271: "MDEntrySize", 273: "MDEntryTime",
    278: "MDEntryID", 279: "MDUpdateAction", 320: "SecurityReqID", 322: "SecurityResponseID",
    371: "RefTagID", 372: "RefMsgType", 373: "SessionRejectReason", 379: "BusinessRejectRefID",
    380: "BusinessRejectReason", 393: "TotNoRelatedSym", 434: "CxlRejResponseTo", 448: "PartyID",
    452: "PartyRole", 453: "NoPartyIDs", 553: "Username", 554: "Password", 559: "SecurityListRequestType",
    560: "SecurityRequestResult", 851: "LastLiquidityInd", 870: "NoInstrAttrib", 871: "InstrAttribType",
    872: "InstrAttribValue", 880: "TrdMatchID", 893: "LastFragment", 980: "SecurityUpdateAction",
    1023: "MDPriceLevel", 1128: "ApplVerID", 1137: "DefaultApplVerID", 1324: "ListUpdateAction",
    1409: "SessionStatus", 2362: "SelfMatchPreventionID", 2446: "AggressorSide",
    2964: "SelfMatchPreventionInstruction",
}

MSG_TYPE_NAMES: dict[bytes, str] = {
    b"0": "Heartbeat", b"1": "TestRequest", b"2": "ResendRequest", b"3": "Reject", b"4": "SequenceReset",
    b"5": "Logout", b"A": "Logon", b"8": "ExecutionReport", b"9": "OrderCancelReject", b"D": "NewOrderSingle",
    b"F": "OrderCancelRequest", b"G": "OrderCancelReplaceRequest", b"V": "MarketDataRequest",
    b"W": "MarketDataSnapshotFullRefresh", b"X": "MarketDataIncrementalRefresh",
    b"Y": "MarketDataRequestReject", b"j": "BusinessMessageReject", b"x": "SecurityListRequest",
    b"y": "SecurityList", b"BK": "SecurityListUpdateReport",
}

MASKED_TAGS = frozenset({554})


def readable(frame: bytes) -> str:
    """One line: ``Logon(A) 34=1 | SenderCompID(49)=X | ... | Password(554)=***``."""
    parts = []
    mt = b""
    for item in frame.rstrip(SOH).split(SOH):
        t, _, v = item.partition(b"=")
        try:
            tag = int(t)
        except ValueError:
            parts.append(item.decode("ascii", "replace"))
            continue
        if tag == 35:
            mt = v
        text = "***" if tag in MASKED_TAGS else v.decode("ascii", "replace")
        parts.append(f"{TAG_NAMES.get(tag, '')}({tag})={text}")
    name = MSG_TYPE_NAMES.get(mt, "?")
    return f"{name}({mt.decode('ascii', 'replace')}) " + " | ".join(parts)
