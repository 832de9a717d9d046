"""Interest rules made ready to run: the topic (fixed or taken from the event) and, for the
matching, decay, limits and cap, an `EngagementRule` (interests earn weight exactly as
engagement rules earn points, per topic)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from leadscore.events import Event
from leadscore.model import conditions as cond
from leadscore.model.compiled import EngagementRule, Matcher
from leadscore.model.schema import InterestRule as InterestSpec
from leadscore.model.schema import Model

# The number of topics a lead's interest profile lists (the highest weights).
PROFILE_SIZE = 10

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Topic:
    """A fixed topic (`path` None) or `prefix + <value at path> + suffix`."""

    text: str
    path: str | None = None       # canonical event path (`properties.model`)
    prefix: str = ""
    suffix: str = ""

    def of(self, event: Event) -> str | None:
        """The topic an event shows interest in; None where the value is missing or not a
        non-empty string (the event then earns no interest)."""
        if self.path is None:
            return self.text
        value = event.get(self.path)
        if not isinstance(value, str) or value == "":
            return None
        return f"{self.prefix}{value}{self.suffix}"


def parse_topic(text: str) -> Topic:
    """`painting` → fixed; `"{properties.topic}"` (with optional text around one placeholder)
    → taken from the event. Raises ValueError on a bad template."""
    found = _PLACEHOLDER.findall(text)
    if not found:
        if "{" in text or "}" in text:
            raise ValueError("a topic template is `{properties.x}` (one pair of braces)")
        return Topic(text)
    if len(found) > 1:
        raise ValueError("a topic takes at most one `{path}` from the event")
    path = cond.canonical_path(found[0].strip(), "event", None)
    if path is None:
        raise ValueError(f"cannot take a topic from {found[0]!r}; expected properties.<x>, "
                         "context.<x>, event or path")
    prefix, _, suffix = _PLACEHOLDER.sub("\x00", text).partition("\x00")
    if "{" in prefix + suffix or "}" in prefix + suffix:
        raise ValueError("a topic template is `{properties.x}` (one pair of braces)")
    return Topic(text, path, prefix, suffix)


@dataclass(frozen=True)
class InterestRule:
    index: int
    topic: Topic
    rule: EngagementRule   # matcher, points, limit, distinct, cap, half-life

    @property
    def name(self) -> str:
        return self.rule.name


def interest_name(index: int, spec: InterestSpec) -> str:
    return spec.name or f"interest {index} ({spec.topic})"


_COMPILED: dict[int, tuple[Model, tuple[InterestRule, ...]]] = {}


# A topic whose weight has decayed below this has left the profile. Not 0: the batch plan sums
# weights exactly as DECIMAL with 12 places, where 2e-23 is 0 and a double is not.
MIN_WEIGHT = 1e-9


def compile_interests(model: Model) -> tuple[InterestRule, ...]:
    """The model's interest rules, ready to run (cached per model object)."""
    found = _COMPILED.get(id(model))
    if found is None or found[0] is not model:
        rules = tuple(
            InterestRule(i, parse_topic(spec.topic), EngagementRule(
                i, interest_name(i, spec), Matcher.of(spec), spec.points, spec.limit,
                cond.canonical_path(spec.distinct, "event", None) if spec.distinct else None,
                spec.cap, model.rule_half_life(spec)))
            for i, spec in enumerate(model.interests))
        found = _COMPILED[id(model)] = (model, rules)
    return found[1]


def ranked(weights: dict[str, float], size: int | None = PROFILE_SIZE
           ) -> tuple[tuple[str, float], ...]:
    """A profile: topics with a weight of at least `MIN_WEIGHT`, highest first (ties: by
    topic), top `size`."""
    items = sorted(((t, w) for t, w in weights.items() if w >= MIN_WEIGHT),
                   key=lambda i: (-i[1], i[0]))
    return tuple(items if size is None else items[:size])


def summary(profile: tuple[tuple[str, float], ...] | list[tuple[str, float]], top: int = 3
            ) -> str:
    """For people: `interested in: SUV 5, sedan 2.5` (empty when there is no interest)."""
    if not profile:
        return ""
    return "interested in: " + ", ".join(f"{topic} {_short(weight)}"
                                         for topic, weight in list(profile)[:top])


def _short(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text
