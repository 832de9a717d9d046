"""E-mail addresses from traits, made safe to send to.

A lead's `email` trait is attacker-controlled (the write key is public): it must be exactly
one valid address (`email-validator`, syntax only: no DNS lookups) or the lead gets no program
e-mail. Suppressions, unsubscribes and the weekly limit are kept per address — normalised and
hashed (`address_hash`), so a new lead id with the same address is the same person and the
store keeps no address it was asked to forget.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache
from typing import Any

SUBJECT_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def check_address(value: Any) -> tuple[str | None, str | None]:
    """(the address to send to, None) when `value` is one valid address; else (None, why)."""
    if value is None or value == "":
        return None, "the lead has no e-mail address"
    if not isinstance(value, str):
        return None, f"the email trait is a {type(value).__name__}, not an address"
    return _check(value)


@lru_cache(maxsize=4096)        # a batch of steps asks about one lead's address often
def _check(value: str) -> tuple[str | None, str | None]:
    from email_validator import EmailNotValidError, validate_email

    try:
        found = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"the email trait is not one valid address: {exc}"
    return found.normalized, None


def normalise(address: str) -> str:
    """The form suppressions compare: trimmed, Unicode NFC, lower-case."""
    return unicodedata.normalize("NFC", address.strip()).lower()


def address_hash(address: str) -> str:
    """SHA-256 (hex) of the normalised address: what the store keeps instead of it."""
    return hashlib.sha256(normalise(address).encode("utf-8")).hexdigest()


def header_text(value: Any, limit: int = SUBJECT_CHARS) -> str:
    """Text safe in one header line: control characters (CR, LF …) become a space, runs of
    white space one, at most `limit` characters (an ellipsis marks a cut)."""
    text = " ".join(_CONTROL.sub(" ", str(value)).split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"
