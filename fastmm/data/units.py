"""Moved to :mod:`fastmm.units` (the one units module); this name stays only for
:mod:`fastmm.procs.hedger`, which is being rewritten elsewhere. New code imports ``fastmm.units``."""

from fastmm.units import E8, DataError, e8_to_decimal, fixed_e8, format_e8, parse_e8

__all__ = ["E8", "DataError", "e8_to_decimal", "fixed_e8", "format_e8", "parse_e8"]
