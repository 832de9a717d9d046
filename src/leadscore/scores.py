"""The results every layer shares: a lead's `Score` with its `Reason`s, a `Handoff` when it
crosses the MQL threshold, an account's `AccountScore`, and the columns of the scores table.

Plain data with no engine behind it: the store, the API and the alerts read these without
importing an engine (nor DuckDB, sqlglot or pyarrow)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from leadscore.events import Event

# The scores table (DESIGN.md §4), as every batch engine writes it.
OUTPUT_COLUMNS = ("lead_id", "model", "fit", "engagement", "score", "grade", "temperature",
                  "stage", "mql", "disqualified", "disqualify_reason", "purchases",
                  "customer_since", "tenure_days", "recency_days", "frequency", "monetary",
                  "as_of")


def profile_json(profile_items: tuple[tuple[str, float], ...] | list[Any]
                 ) -> list[dict[str, Any]]:
    """A profile as the scores table and the API show it: [{topic, weight}, …]."""
    out = []
    for item in profile_items:
        if isinstance(item, Mapping):
            out.append({"topic": item["topic"], "weight": item["weight"]})
        else:
            out.append({"topic": item[0], "weight": item[1]})
    return out


class Reason(NamedTuple):
    """One rule behind a score: its points now, the events it matched and counted."""

    rule: str
    kind: str               # fit | disqualify | engagement | program
    points: float
    matched: int = 1        # matching events (1 for a fit rule)
    counted: int = 1        # of those, the ones that count (limit / distinct)
    last_at: int | None = None
    detail: str | None = None


# A `Score` as a row: the scores table's columns and the lead's ranked interests.
SCORE_COLUMNS = (*OUTPUT_COLUMNS, "interests")


class Score(NamedTuple):
    """One lead under one model at one moment (times in µs); `reasons` sum to `score`."""

    lead_id: str
    model: str
    fit: float
    engagement: float
    score: float
    grade: str | None
    temperature: str | None
    stage: str
    mql: bool
    disqualified: bool
    disqualify_reason: str | None
    purchases: int
    customer_since: int | None
    tenure_days: float | None
    as_of: int
    reasons: tuple[Reason, ...] = ()
    # The ranked interest profile: (topic, weight), highest first (model-format.md).
    interests: tuple[tuple[str, float], ...] = ()
    # Customer lifecycle (model.purchases), null for a lead that never bought; `frequency` below.
    recency_days: float | None = None
    monetary: float | None = None

    @property
    def frequency(self) -> int | None:
        return self.purchases or None

    def row(self) -> dict[str, Any]:
        """The score as a row of the scores table (times as µs; interests as
        [{topic, weight}, …])."""
        row = {name: getattr(self, name) for name in SCORE_COLUMNS}
        row["interests"] = profile_json(self.interests)
        return row


@dataclass(frozen=True)
class Handoff:
    """Raised once per upward crossing of the MQL threshold: hand the lead to sales."""

    id: str
    lead_id: str
    model: str
    at: int
    score: Score
    event: Event | None

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return self.score.reasons


@dataclass(frozen=True)
class Update:
    score: Score
    handoff: Handoff | None = None


ACCOUNT_COLUMNS = ("account_id", "model", "fit", "engagement", "score", "disqualified",
                   "disqualify_reason", "roles_engaged", "roles_missing", "mqa", "leads",
                   "engaged_leads", "leads_by_group", "leads_by_account_id", "leads_by_domain",
                   "as_of")


class AccountScore(NamedTuple):
    """One account under one model at one moment (µs)."""

    account_id: str
    model: str
    fit: float
    engagement: float
    score: float
    disqualified: bool
    disqualify_reason: str | None
    roles_engaged: tuple[str, ...]
    roles_missing: tuple[str, ...]
    mqa: bool
    leads: int                 # linked leads the model scores (disqualified ones too)
    engaged_leads: int         # of those: not disqualified, engagement > 0
    leads_by_group: int        # how the linked leads were matched
    leads_by_account_id: int
    leads_by_domain: int
    as_of: int
    reasons: tuple[Reason, ...] = ()
    members: tuple[tuple[str, str, float], ...] = ()   # (lead_id, match kind, engagement)

    def row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in ACCOUNT_COLUMNS}
        row["roles_engaged"], row["roles_missing"] = list(self.roles_engaged), list(
            self.roles_missing)
        return row


@dataclass(frozen=True)
class AccountHandoff:
    """Raised once per upward crossing of an account's MQA threshold."""

    id: str
    account_id: str
    model: str
    at: int
    score: AccountScore
    lead_id: str | None = None      # whose change raised it
    event: Event | None = None
