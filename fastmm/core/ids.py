"""ClOrdIDs that TrueX accepts (at most 18 ASCII characters, unique), and a bounded set of seen ids.

TrueX silently dropped longer ids in UAT (venue facts, section 1), so the generator refuses to make
one: a short prefix that the shell makes unique per run (e.g. from its start time) plus a counter in
hexadecimal (one C-level format call on the hot path). ``RecentIds`` de-duplicates ExecIDs (resent
fills, PossDupFlag=Y) in bounded memory.
"""

from __future__ import annotations

from collections import OrderedDict

MAX_CL_ORD_ID = 18
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(n: int) -> str:
    """``n`` (>= 0) in base 36, lower case: short, unique-per-run ClOrdID prefixes from a clock."""
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if not n:
            return out


class ClOrdIdGen:
    """``prefix`` + hexadecimal counter; raises before it would make an id TrueX drops."""

    __slots__ = ("_limit", "_n", "prefix")

    def __init__(self, prefix: str, start: int = 0) -> None:
        if not prefix or len(prefix) > 12 or not all("\x21" <= c <= "\x7e" for c in prefix) or "-" in prefix:
            raise ValueError(f"ClOrdID prefix must be 1..12 printable ASCII characters, no '-': {prefix!r}")
        self.prefix = prefix
        self._n = start
        self._limit = 16 ** (MAX_CL_ORD_ID - len(prefix))

    def next(self) -> str:
        n = self._n = self._n + 1
        if n >= self._limit:
            raise OverflowError(f"ClOrdID counter for prefix {self.prefix!r} exhausted")
        return f"{self.prefix}{n:x}"

    @property
    def count(self) -> int:
        return self._n


class RecentIds:
    """Remembers the last ``capacity`` ids; ``add`` says whether an id is new."""

    __slots__ = ("_cap", "_ids")

    def __init__(self, capacity: int = 65536) -> None:
        self._cap = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> bool:
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self._cap:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, key: str) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)
