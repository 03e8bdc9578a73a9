"""fastmm.fix.dictionary's static tables are TrueX's published dictionaries, read from the XML files."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from conftest import DICTS

from fastmm.fix.dictionary import ADMIN_MESSAGES, APP_MSG_TYPES, DEFINED_TAGS


def _load(name: str) -> ET.Element:
    return ET.parse(DICTS / name).getroot()


def _items(root: ET.Element, section: str) -> list[ET.Element]:
    found = root.find(section)
    assert found is not None, section
    return list(found)


def test_tables_match_truex_xml() -> None:
    t11, app = _load("TrueX_FIXT11.xml"), _load("TrueX_FIX50SP2.xml")
    numbers = {f.get("name"): int(f.get("number") or 0) for d in (t11, app) for f in _items(d, "fields")}
    assert {int(f.get("number") or 0) for d in (t11, app) for f in _items(d, "fields")} == DEFINED_TAGS
    admin = {}
    for m in _items(t11, "messages"):
        fs = m.findall("field")
        admin[(m.get("msgtype") or "").encode()] = (
            frozenset(numbers[f.get("name")] for f in fs if f.get("required") == "Y"),
            frozenset(numbers[f.get("name")] for f in fs))
    assert admin == ADMIN_MESSAGES
    assert {(m.get("msgtype") or "").encode() for m in _items(app, "messages")} == APP_MSG_TYPES
