"""The journal: the engine's write-ahead log of every order, answer, fill, hedge and risk event.

``records`` is the line format (one frozen dataclass per kind), ``writer`` the appending writer,
``reader`` reads a journal back (typed records, or the first format's dicts), ``replay`` is the one fold
of records into what recovery, the report, the metrics and the hedger need to know.
"""

from fastmm.journal.reader import JournalError, read_journal, read_records, segments
from fastmm.journal.records import FORMAT_VERSION, KINDS, Record, RecordError, from_dict
from fastmm.journal.writer import Durability, Journal, encode_line

__all__ = [
    "FORMAT_VERSION", "KINDS", "Durability", "Journal", "JournalError", "Record", "RecordError",
    "encode_line", "from_dict", "read_journal", "read_records", "segments",
]
