"""Page-path globs: `*` matches any run of characters (`/` included), `?` exactly one."""

from __future__ import annotations

import re
from functools import lru_cache

LIKE_ESCAPE = "\\"


@lru_cache(maxsize=4096)
def glob_to_regex(glob: str) -> re.Pattern[str]:
    """A compiled regex that matches a whole string against the glob."""
    parts = []
    for char in glob:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def glob_to_like(glob: str) -> str:
    """The glob as a SQL LIKE pattern, to be used with `ESCAPE '\\'`."""
    out = []
    for char in glob:
        if char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        elif char in ("%", "_", LIKE_ESCAPE):
            out.append(LIKE_ESCAPE + char)
        else:
            out.append(char)
    return "".join(out)


def strip_query(path: str) -> str:
    """A page path without its query string or fragment."""
    for mark in ("?", "#"):
        cut = path.find(mark)
        if cut >= 0:
            path = path[:cut]
    return path
