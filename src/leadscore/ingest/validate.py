"""Checking one Segment message before anything is stored: ids, types, timestamps.

A message that fails raises EventError naming the message's index and the field. A timestamp
before 2000 or more than a day after the message was received is absurd and rejected; one
slightly in the future (a client's fast clock) is clamped to the time it was received.
A message without `messageId` gets one derived from its content and its time, so a retry of
one send is counted once while the same event sent again later counts again: the time is the
message's own (`timestamp`, `originalTimestamp` or `sentAt`, part of its content) when it has
one, as a retry carries the same; else the minute (UTC) it was received, so retries within
that minute are one event and a "Logged In" sent each day without a timestamp counts each day.

An identify whose traits hold Segment's reserved `company` object ({name, id, industry,
employee_count, plan…}), or else an `account` object, names the lead's account as a group
call would: the account's id is
`company.id`, else its `name`, else its `domain`; its other keys are the account's traits.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leadscore.errors import EventError
from leadscore.events import Event, event_from_message
from leadscore.jsontext import dumps as json_text
from leadscore.timeutil import US_PER_DAY, iso, parse_timestamp

MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
EARLIEST = parse_timestamp("2000-01-01T00:00:00Z")
MAX_AHEAD_US = US_PER_DAY
MAX_ID_LENGTH = 512


@dataclass(frozen=True)
class Message:
    """A valid message: its ids as text, its timestamp as scored, the message as sent."""

    index: int
    message_id: str
    type: str
    user_id: str | None
    anonymous_id: str | None
    timestamp: int
    raw: Mapping[str, Any]
    event: Event | None = None              # track, page, screen
    traits: Mapping[str, Any] = field(default_factory=dict)   # identify, group
    group_id: str | None = None             # group; identify with traits.company
    group_traits: dict[str, Any] = field(default_factory=dict)  # the account's traits
    previous_id: str | None = None          # alias
    encoded: str | None = None              # `raw` as the log's JSON text (see `validate`)


def _error(index: int, field_name: str | None, reason: str) -> EventError:
    error = EventError(reason, source=f"message {index}", field=field_name)
    error.row = index
    return error


def _id(message: Mapping[str, Any], key: str, index: int) -> str | None:
    value = message.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _error(index, key, f"must be a string (got {type(value).__name__})")
    text = str(value)
    if not text.strip():
        return None
    if len(text) > MAX_ID_LENGTH:
        raise _error(index, key, f"is longer than {MAX_ID_LENGTH} characters")
    return text


def _object(message: Mapping[str, Any], key: str, index: int) -> Mapping[str, Any]:
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _error(index, key, f"must be an object (got {type(value).__name__})")
    return value


def _context_traits(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """RudderStack's browser SDK sends an identify's traits as `context.traits` only."""
    context = message.get("context")
    traits = context.get("traits") if isinstance(context, Mapping) else None
    return traits if isinstance(traits, Mapping) else {}


TIME_KEYS = ("timestamp", "originalTimestamp", "sentAt")
US_PER_MINUTE = 60_000_000


def content_id(message: Mapping[str, Any], received_at: int | None = None) -> str:
    """A messageId for a message that has none: the same content at the same time, the same
    id. Without a time of its own, the minute it was received (`received_at`) is its time."""
    text = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str)
    if received_at is not None and all(message.get(k) is None for k in TIME_KEYS):
        text += f"@{received_at // US_PER_MINUTE}"
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:40]


def validate(message: Any, index: int, received_at: int) -> Message:
    """The message checked and read; raises EventError naming the index and the field."""
    if not isinstance(message, Mapping):
        raise _error(index, None, f"a message must be an object (got {type(message).__name__})")
    kind = message.get("type")
    if kind not in MESSAGE_TYPES:
        raise _error(index, "type", f"unknown message type {kind!r}; expected one of "
                     f"{', '.join(MESSAGE_TYPES)}")
    message_id = _id(message, "messageId", index) or content_id(message, received_at)
    user_id = _id(message, "userId", index)
    anonymous_id = _id(message, "anonymousId", index)
    if kind == "alias":
        if user_id is None:
            raise _error(index, "userId", "an alias message needs userId")
    elif user_id is None and anonymous_id is None:
        raise _error(index, "userId", "the message has neither userId nor anonymousId")
    timestamp = _timestamp(message, index, received_at)
    for key in ("context", "properties", "traits"):
        _object(message, key, index)
    # Encoded here, before the store's write transaction, not under its lock.
    encoded = _encoded(message, index)
    common: dict[str, Any] = dict(index=index, message_id=message_id, type=kind,
                                  user_id=user_id, anonymous_id=anonymous_id,
                                  timestamp=timestamp, raw=message, encoded=encoded)
    if kind in ("track", "page", "screen"):
        name_key = "event" if kind == "track" else "name"
        name = message.get(name_key)
        if name is not None and not isinstance(name, str):
            raise _error(index, name_key, f"must be a string (got {type(name).__name__})")
        if kind == "track" and not (name or "").strip():
            raise _error(index, "event", "a track message needs an event name")
        try:
            event = event_from_message({**message, "userId": user_id or anonymous_id,
                                        "timestamp": timestamp})
        except EventError as exc:
            raise _error(index, exc.field, str(exc).split(": ", 1)[-1]) from None
        return Message(**common, event=event)
    if kind == "identify":
        traits = _object(message, "traits", index) or _context_traits(message)
        company = company_account(traits)
        if company is None:
            return Message(**common, traits=traits)
        return Message(**common, traits=traits, group_id=company[0], group_traits=company[1])
    if kind == "group":
        group_id = _id(message, "groupId", index)
        if group_id is None:
            raise _error(index, "groupId", "a group message needs groupId")
        traits = _object(message, "traits", index)
        return Message(**common, traits=traits, group_id=group_id, group_traits=dict(traits))
    previous_id = _id(message, "previousId", index)
    if previous_id is None:
        raise _error(index, "previousId", "an alias message needs previousId")
    return Message(**common, previous_id=previous_id)


def _encoded(message: Mapping[str, Any], index: int) -> str:
    """The message as the log's JSON text; refused if it holds a value no store keeps: a
    number out of range (`1e400` reads as Infinity, which is not JSON) or a NUL character
    (PostgreSQL's text and jsonb cannot hold one). The text is searched first: the walk to
    name the field runs only for a message that may hold one."""
    try:
        encoded = json_text(message)
    except RecursionError:
        raise _error(index, None, "the message nests arrays and objects too deeply") from None
    if "Infinity" in encoded or "NaN" in encoded or "\\u0000" in encoded:
        found = unstorable(message, "")
        if found is not None:
            raise _error(index, found[0] or None, found[1])
    return encoded


def unstorable(node: Any, path: str) -> tuple[str, str] | None:
    """(field path, why) of the first value of `node` no store keeps, or None."""
    if isinstance(node, float) and not math.isfinite(node):
        return path, "a number out of range (not finite); JSON numbers must be finite"
    if isinstance(node, str):
        return (path, "a NUL character (\\u0000) is not allowed in text") if "\x00" in node \
            else None
    if isinstance(node, Mapping):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            found = unstorable(str(key), where) or unstorable(value, where)
            if found:
                return found
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            found = unstorable(value, f"{path}[{i}]")
            if found:
                return found
    return None


ACCOUNT_KEYS = ("id", "name", "domain")   # what names an account, in order of preference


ACCOUNT_OBJECTS = ("company", "account")   # the traits that may hold the account, in order


def company_account(traits: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(account id, account traits) of an identify's `traits.company` object (Segment's
    reserved trait), else its `traits.account` object; None where neither is an object that
    names an account (an id, name or domain)."""
    for key in ACCOUNT_OBJECTS:
        company = traits.get(key)
        if not isinstance(company, Mapping):
            continue
        found = next((company[k] for k in ACCOUNT_KEYS if _names(company.get(k))), None)
        if found is not None:
            return str(found), {k: v for k, v in company.items() if k != "id"}
    return None


def _names(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and bool(
        str(value).strip()) and len(str(value)) <= MAX_ID_LENGTH


def _timestamp(message: Mapping[str, Any], index: int, received_at: int) -> int:
    key = "timestamp" if message.get("timestamp") is not None else (
        "originalTimestamp" if message.get("originalTimestamp") is not None else None)
    if key is None:
        return received_at
    value = message[key]
    try:
        timestamp = parse_timestamp(value)
    except (ValueError, OverflowError) as exc:
        raise _error(index, key, str(exc)) from None
    if timestamp < EARLIEST:
        raise _error(index, key, f"{value!r} is before 2000-01-01: not a plausible time")
    if timestamp > received_at + MAX_AHEAD_US:
        raise _error(index, key, f"{value!r} is more than a day in the future (received at "
                     f"{iso(received_at)})")
    return min(timestamp, received_at)
