"""YAML files as leadscore reads them — models, segments, programs, content — and what their
problems say: the data with the line of every key (`Lines`), key paths as people write them
(`key_path`), "did you mean" suggestions (`suggest`, settings use it too) and a `Problem` that
names file, line and key (`problem`).

>>> raw, lines, file = read_yaml("m.yaml", text="name: m\\nfit:\\n  - {name: a, points: 1}\\n")
>>> lines.of(("fit", 0, "points")), key_path(("fit", 0, "points"))
(3, 'fit[0].points')
>>> suggest("engagment", ["fit", "engagement"])
'engagement'
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from leadscore.errors import ModelError, Problem

KeyPath = tuple[str | int, ...]


class YamlLoader(yaml.SafeLoader):
    """YAML 1.2 scalars: `on`/`off`/`yes`/`no` stay strings (`on:` is a lifecycle key) and
    timestamps stay strings (the engines parse them)."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def load_yaml(text: str) -> Any:
    """Parse YAML the way model files are read everywhere in leadscore."""
    return yaml.load(text, Loader=YamlLoader)


class Lines:
    """Line numbers (1-based) of every key and list item of a YAML document."""

    def __init__(self, node: yaml.Node | None):
        self.lines: dict[KeyPath, int] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, at: KeyPath) -> None:
        self.lines.setdefault(at, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = (*at, key.value)
                self.lines[here] = key.start_mark.line + 1
                self._walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*at, i))

    def of(self, at: KeyPath) -> int | None:
        """The line of `at`, else of the nearest key above it that the file has."""
        while at not in self.lines and at:
            at = at[:-1]
        return self.lines.get(at)


def key_path(at: KeyPath) -> str:
    """A key path as people write it: `engagement.rules[2].points`; `(file)` for the root."""
    text = ""
    for part in at:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(file)"


def suggest(word: str, choices: Iterable[str], *, aliases: Mapping[str, str] | None = None,
            ignore_case: bool = False) -> str | None:
    """The choice `word` was most likely meant to be, or None: its entry in `aliases` (names
    people type by habit), a choice that differs only in case (`ignore_case`), else the
    closest by spelling (difflib's ratio at least 0.6)."""
    options = list(choices)
    if aliases is not None and word in aliases:
        return aliases[word]
    if ignore_case:
        for choice in options:
            if word.lower() == choice.lower():
                return choice
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return close[0] if close else None


def problem(file: str, lines: Lines, at: KeyPath, message: str, value: object = None,
            expected: str | None = None, suggestion: str | None = None) -> Problem:
    """A problem at key path `at` of a file: its line and key filled in."""
    return Problem(file, lines.of(at), key_path(at), message, value, expected, suggestion)


def read_yaml(source: str | Path, text: str | None = None) -> tuple[Any, Lines, str]:
    """A YAML file's data, the line of every key and the file's name; ModelError (§3 shape)
    when it cannot be read or parsed. Models, segments, programs and content all load here."""
    file = str(source)
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelError([Problem(file, None, "(file)", "file not found")]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError([Problem(file, None, "(file)", f"cannot read: {exc}")]) from None
    try:
        node = yaml.compose(text, Loader=YamlLoader)
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ModelError([Problem(file, line, "(file)", f"not valid YAML: "
                                  f"{getattr(exc, 'problem', exc)}")]) from None
    return raw, Lines(node), file
