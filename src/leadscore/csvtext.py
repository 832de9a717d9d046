"""CSV written for people's spreadsheets.

A cell whose text starts with `=`, `+`, `-`, `@` (or a tab or carriage return) is run as a
formula by Excel, LibreOffice and Google Sheets; traits come from the public write key, so such
a cell could be `=HYPERLINK(...)` planted by anyone. Those cells get a leading `'` (OWASP's
"CSV injection" advice): the spreadsheet shows the text, and runs nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from leadscore.jsontext import dumps

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """`value` as a CSV cell: objects and lists as JSON, formula-like text escaped."""
    if isinstance(value, dict | list):
        value = dumps(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV document: the header, then every row with its cells made safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([cell(name) for name in header])
    for row in rows:
        writer.writerow([cell(value) for value in row])
    return buffer.getvalue()
