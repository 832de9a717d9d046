"""JSON as text for the store's JSON columns and the event log: one encoder, shared.

`json.dumps(value, default=str)` builds an encoder per call (~3 µs of ~10 for an engine state),
and the hot path writes hundreds per transaction. Kept out of `leadscore.store` so that code
encoding messages (`ingest.validate`, read by the file readers) does not import SQLAlchemy.
"""

from __future__ import annotations

import json
from typing import Any

_encode = json.JSONEncoder(default=str).encode


def dumps(value: Any) -> str:
    """`value` as JSON text: a value JSON has no type for (a datetime…) is written as text."""
    return _encode(value)
