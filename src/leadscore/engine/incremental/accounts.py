"""Account scoring (B2B) in the incremental engine: `AccountScorer` beside a `Scorer`.

An account's score under a model is its fit (the `account.fit` rules on its traits) plus the
roll-up (`sum`, `max`, `top3_mean`) of the engagement of its leads that the model scores and
that are not disqualified. Its buying-committee roles are engaged by such leads with
engagement > 0 whose role trait matches. Crossing `thresholds.mqa` upwards raises one
`AccountHandoff` per crossing, as a lead's MQL crossing does (docs/model-format.md).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from leadscore.engine.incremental.fit import fit_reasons
from leadscore.engine.incremental.scorer import Scorer
from leadscore.errors import EngineError
from leadscore.events import Event, Lead, event_from_message
from leadscore.model import conditions as cond
from leadscore.model.accounts import (
    MATCH_KINDS,
    CompiledAccount,
    account_of,
    compile_account,
    domain_index,
    rollup,
)
from leadscore.scores import AccountHandoff, AccountScore, Reason
from leadscore.timeutil import now_us, parse_timestamp


class AccountScorer:
    """Accounts of the leads a `Scorer` scores: traits, links, scores, handoffs.

    >>> accounts = AccountScorer(scorer)                                # doctest: +SKIP
    >>> accounts.identify_account("acme", {"domain": "acme.com", "industry": "software"})
    >>> accounts.update_one({...})   # folds the event into `scorer` too; returns handoffs
    """

    def __init__(self, scorer: Scorer):
        self.scorer = scorer
        self.models: dict[str, CompiledAccount] = {}
        for name, compiled in scorer.models.items():
            account = compile_account(compiled.model)
            if account is not None:
                self.models[name] = account
        self._traits: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, str] = {}             # lead → account (group calls)
        self._links: dict[str, tuple[str, str]] | None = None   # cache: lead → (account, kind)
        self._mqa: dict[tuple[str, str], bool] = {}
        self._crossings: dict[tuple[str, str], int] = {}

    # ---- input

    def identify_account(self, account_id: str, traits: Mapping[str, Any] | None = None, *,
                         as_of: object = None) -> list[AccountHandoff]:
        """Merge an account's traits (`domain` links leads by e-mail domain)."""
        before = self._links_now()
        self._traits.setdefault(str(account_id), {}).update(traits or {})
        self._links = None
        after = self._links_now()
        touched = {str(account_id)} | {a for a, _ in before.values()} | {
            a for a, _ in after.values()} if "domain" in (traits or {}) else {str(account_id)}
        return self._check(touched, _time(as_of), None, None)

    def group(self, lead_id: str, account_id: str, traits: Mapping[str, Any] | None = None,
              *, as_of: object = None) -> list[AccountHandoff]:
        """A Segment `group` call: the lead belongs to the account (before any other match)."""
        lead_id, account_id = str(lead_id), str(account_id)
        old = self.account_of(lead_id)
        self._groups[lead_id] = account_id
        if traits:
            self._traits.setdefault(account_id, {}).update(traits)
        else:
            self._traits.setdefault(account_id, {})
        self._links = None
        touched = {account_id} | ({old[0]} if old else set())
        return self._check(touched, _time(as_of), lead_id, None)

    def identify(self, lead_id: str, traits: Mapping[str, Any] | None = None,
                 account: Mapping[str, Any] | None = None, *,
                 as_of: object = None) -> list[AccountHandoff]:
        """`Scorer.identify`, then the account handoffs the change raised."""
        lead_id = str(lead_id)
        old = self.account_of(lead_id)
        when = self._when_for(lead_id, as_of)
        self._before({old[0]} if old else set(), when)
        self.scorer.identify(lead_id, traits, account, as_of=when)
        self._links = None
        new = self.account_of(lead_id)
        touched = {a for a in (old[0] if old else None, new[0] if new else None) if a}
        return self._check(touched, when, lead_id, None)

    def update_one(self, event: Event | Mapping[str, Any], *,
                   as_of: object = None) -> list[AccountHandoff]:
        """`Scorer.update_one`, then the account handoffs the event raised."""
        if not isinstance(event, Event):
            event = event_from_message(event)
        link = self.account_of(event.lead_id)
        latest = self.scorer.latest(event.lead_id)
        when = _time(as_of) if as_of is not None else (
            event.timestamp if latest is None else max(latest, event.timestamp))
        if link is not None:
            self._before({link[0]}, when)
        self.scorer.update_one(event, as_of=as_of)
        if link is None:
            return []
        return self._check({link[0]}, when, event.lead_id, event)

    # ---- output

    def account_of(self, lead_id: str) -> tuple[str, str] | None:
        """(account id, match kind: group | account_id | domain) of a lead, or None."""
        return self._links_now().get(str(lead_id))

    def accounts(self) -> list[str]:
        """Every account known: with traits, or named by a lead."""
        return sorted(set(self._traits) | {a for a, _ in self._links_now().values()})

    def traits(self, account_id: str) -> dict[str, Any]:
        return dict(self._traits.get(account_id, {}))

    def members(self, account_id: str) -> dict[str, str]:
        """The account's leads: lead id → match kind."""
        return {lead: kind for lead, (a, kind) in self._links_now().items() if a == account_id}

    def score(self, account_id: str, model: str | None = None, *,
              as_of: object = None) -> AccountScore:
        name = self._model(model)
        account_id = str(account_id)
        if account_id not in self.accounts():
            raise EngineError(f"unknown account {account_id!r}")
        when = self._clamp(account_id, now_us() if as_of is None else _time(as_of))
        return self._score(account_id, name, when)

    def scores(self, *, as_of: object = None) -> Iterator[AccountScore]:
        when = now_us() if as_of is None else _time(as_of)
        for name in sorted(self.models):
            for account_id in self.accounts():
                yield self._score(account_id, name, self._clamp(account_id, when))

    # ---- internals

    def _model(self, name: str | None) -> str:
        if name is None:
            if len(self.models) != 1:
                raise EngineError("name a model with an `account:` section; these have one: "
                                  f"{', '.join(sorted(self.models)) or '(none)'}")
            return next(iter(self.models))
        if name not in self.models:
            raise EngineError(f"model {name!r} has no `account:` section")
        return name

    def _links_now(self) -> dict[str, tuple[str, str]]:
        if self._links is None:
            domains = domain_index(self._traits)
            links = {}
            for lead_id in self.scorer.leads():
                found = account_of(self.scorer.lead(lead_id).traits,
                                   self._groups.get(lead_id), domains)
                if found is not None:
                    links[lead_id] = found
            for lead_id, account_id in self._groups.items():
                links.setdefault(lead_id, (account_id, "group"))
            self._links = links
        return self._links

    def _when_for(self, lead_id: str, as_of: object) -> int:
        if as_of is not None:
            return _time(as_of)
        latest = self.scorer.latest(lead_id)
        return latest if latest is not None else now_us()

    def _clamp(self, account_id: str, when: int) -> int:
        """Never score an account before the latest event of one of its leads."""
        for lead_id in self.members(account_id):
            latest = self.scorer.latest(lead_id)
            if latest is not None and latest > when:
                when = latest
        return when

    def _before(self, account_ids: set[str], when: int) -> None:
        """Whether each account is an MQA just before a change (it may have decayed below)."""
        for account_id in account_ids:
            for name in self.models:
                if self._mqa.get((account_id, name)):
                    score = self._score(account_id, name, self._clamp(account_id, when),
                                        light=True)
                    self._mqa[(account_id, name)] = score.mqa

    def _check(self, account_ids: set[str], when: int, lead_id: str | None,
               event: Event | None) -> list[AccountHandoff]:
        handoffs = []
        for account_id in sorted(account_ids):
            for name in sorted(self.models):
                at = self._clamp(account_id, when)
                score = self._score(account_id, name, at, light=True)
                key = (account_id, name)
                was = self._mqa.get(key, False)
                self._mqa[key] = score.mqa
                if score.mqa and not was:
                    crossing = self._crossings[key] = self._crossings.get(key, 0) + 1
                    handoffs.append(AccountHandoff(
                        handoff_id(account_id, name, crossing, at), account_id, name, at,
                        self._score(account_id, name, at), lead_id, event))
        return handoffs

    def _score(self, account_id: str, name: str, as_of: int, light: bool = False
               ) -> AccountScore:
        return score_account(self.models[name], name, account_id,
                             self._traits.get(account_id, {}), self.members(account_id),
                             lambda lead_id: self.scorer.peek(lead_id, name, as_of),
                             self.scorer.lead, as_of, light=light)


def score_account(account: CompiledAccount, name: str, account_id: str,
                  traits: Mapping[str, Any], members: Mapping[str, str],
                  peek: Callable[[str], tuple[float, bool] | None],
                  lead_of: Callable[[str], Lead], as_of: int, *, light: bool = False
                  ) -> AccountScore:
    """One account under one model at `as_of`: `members` (lead id → match kind) are its linked
    leads, `peek` their (engagement, disqualified) at `as_of` (None where the model does not
    score the lead), `lead_of` their profile (for the roles). `light`: without reasons and
    members (enough to tell whether it is an MQA). `AccountScorer` and the service both score
    accounts through this."""
    reasons, disqualify_reason = fit_reasons(account.fit, Lead(account_id, {}, dict(traits)))
    fit = math.fsum(r.points for r in reasons)
    engagements: list[float] = []
    people: list[tuple[str, str, float]] = []
    kinds = dict.fromkeys(MATCH_KINDS, 0)
    engaged = 0
    roles: set[str] = set()
    for lead_id, kind in members.items():
        found = peek(lead_id)
        if found is None:
            continue
        engagement, disqualified = found
        kinds[kind] += 1
        people.append((lead_id, kind, engagement))
        if disqualified:
            continue
        engagements.append(engagement)
        if engagement > 0:
            engaged += 1
            lead = lead_of(lead_id)
            roles.update(role for role, condition in account.roles
                         if cond.evaluate(condition, lead.get))
    engagement = rollup(account.rollup, engagements)
    if not light:
        reasons.append(Reason(f"{account.rollup} of the leads' engagement", "engagement",
                              engagement, matched=len(engagements), counted=engaged))
    total = fit + engagement
    disqualified = disqualify_reason is not None
    mqa = not disqualified and account.mqa is not None and total >= account.mqa
    wanted = [role for role, _ in account.roles]
    return AccountScore(
        account_id, name, fit, engagement, total, disqualified, disqualify_reason,
        tuple(r for r in wanted if r in roles), tuple(r for r in wanted if r not in roles),
        mqa, len(people), engaged, kinds["group"], kinds["account_id"], kinds["domain"],
        as_of, () if light else tuple(reasons),
        () if light else tuple(sorted(people, key=lambda m: (-m[2], m[0]))))


def _time(as_of: object) -> int:
    if as_of is None:
        return now_us()
    return as_of if isinstance(as_of, int) else parse_timestamp(as_of)


def handoff_id(account_id: str, model: str, crossing: int, at: int) -> str:
    """A stable id: the same crossing always gets the same id (for deduplication)."""
    return hashlib.sha256(f"account\x00{model}\x00{account_id}\x00{crossing}\x00{at}"
                          .encode()).hexdigest()[:32]
