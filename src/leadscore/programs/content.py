"""The content catalogue (`content.yaml`) and next best content: the item matching the lead's
top interest (then the next ones, by weight) and its stage that it has not received yet."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from leadscore.errors import ModelError
from leadscore.yamlfile import problem, read_yaml

ITEM_KEYS = ("id", "title", "url", "topics", "stages", "description")


def load_content(source: str | Path) -> list[dict[str, Any]]:
    raw, lines, file = read_yaml(source)
    problems = []
    if not isinstance(raw, list):
        raise ModelError([problem(file, lines, (), "content.yaml is a list of items", raw,
                                  "- {id, title, url, topics, stages}")])
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            problems.append(problem(file, lines, (i,), "an item needs an id", item))
            continue
        for key in item:
            if key not in ITEM_KEYS:
                problems.append(problem(file, lines, (i, key), f"unknown key {key!r}", None,
                                        ", ".join(ITEM_KEYS)))
        if item["id"] in seen:
            problems.append(problem(file, lines, (i, "id"), "an id is used twice", item["id"]))
        seen.add(item["id"])
        for key in ("topics", "stages"):
            if key in item and not isinstance(item[key], list):
                problems.append(problem(file, lines, (i, key), f"`{key}` is a list",
                                        item[key]))
    if problems:
        raise ModelError(problems)
    return [dict(item) for item in raw]


def ranked(interests: Mapping[str, float] | Iterable[Any]) -> list[str]:
    """Topics, highest weight first (ties by name)."""
    pairs = list(interests.items()) if isinstance(interests, Mapping) else [
        (i["topic"], i["weight"]) if isinstance(i, Mapping) else tuple(i) for i in interests]
    return [t for t, _ in sorted(pairs, key=lambda p: (-float(p[1]), str(p[0])))]


def pick(catalogue: list[dict[str, Any]], interests: Mapping[str, float], stage: str | None,
         received: set[str]) -> dict[str, Any] | None:
    """Next best content: by the lead's interests in order, for its stage, not yet received;
    without an interest that matches, the first item for its stage not yet received."""
    fresh = [c for c in catalogue if c["id"] not in received
             and (not c.get("stages") or stage in c["stages"])]
    for topic in ranked(interests):
        for item in fresh:
            if topic in (item.get("topics") or []):
                return item
    return fresh[0] if fresh else None
