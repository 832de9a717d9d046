"""Scoring inside one store transaction: each lead touched is loaded once (its saved engine
state, or a replay of its events when the state is missing or from another model version),
updated message by message, and saved once at the end with its score. A crossing of the MQL
threshold writes a handoff to the outbox in the same transaction.

The work is per transaction, not per message: `prefetch` reads which messageIds are stored,
resolves (and creates) the identities of every message, and locks and loads every lead they
name with its saved state, each in one statement; messages are appended to the log in one
executemany (`write_log`, before anything reads the log back); states and scores are written
with one statement per table at `flush`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from leadscore.engine.incremental import Scorer
from leadscore.engine.incremental.interests import handoff_interests
from leadscore.engine.incremental.lead_state import ModelState
from leadscore.errors import EngineError
from leadscore.events import Event, Lead
from leadscore.filters import LEAD_FILTERS, Filters, lead_filter, which_filter
from leadscore.ingest import profile
from leadscore.ingest.accounts import AccountWork
from leadscore.ingest.as_json import event_json, reason_json
from leadscore.ingest.decoded import DecodedStates
from leadscore.ingest.plan import LeadPlan, Written, key_of, vet
from leadscore.ingest.replay import Replayed, replay
from leadscore.jsontext import dumps
from leadscore.model.compiled import CompiledModel
from leadscore.model.schema import Model
from leadscore.sales.assign import route
from leadscore.scores import Handoff, Update
from leadscore.store import leads as lead_store
from leadscore.store import outbox, scores
from leadscore.store.database import Database
from leadscore.store.leads import ANONYMOUS, USER, LeadRow
from leadscore.timeutil import iso

if TYPE_CHECKING:
    from leadscore.ingest.validate import Message


@dataclass(frozen=True)
class ActiveModel:
    """A model as the service runs it: its name, its active version and the model."""

    name: str
    version: int
    model: Model


class Session:
    """Leads being scored in one transaction. With `write=False` nothing is locked or written
    (reading a lead whose saved state is stale replays it in memory). `score_accounts=False`:
    the accounts its leads touch are left to be scored later (a rescore scores them after
    all their leads)."""

    def __init__(self, db: Database, connection: Connection, models: Sequence[ActiveModel],
                 now: int, *, write: bool = True, score_accounts: bool = True,
                 filters: Filters | None = None, decoded: DecodedStates | None = None):
        self.db, self.connection, self.now, self.write = db, connection, now, write
        # Set where messages come in (`ingest.transaction`): a new event is judged by them
        # (`verdict`); everywhere else the verdicts stored in the log are what counts.
        self.filters = filters
        # States decoded before (kept by an earlier transaction, or outside the write lock):
        # used where the store holds the same text; this session's saves go back with
        # `release` (see `ingest.decoded`).
        self.decoded = decoded
        self._saved: list[tuple[str, str, int, str, ModelState]] = []
        self.score_accounts = score_accounts
        self.accounts = AccountWork(self)
        self.models = {m.name: m for m in models}
        self._model_list = [m.model for m in models]
        self._main = Scorer(self._model_list) if models else None
        self._scorers: dict[str, Scorer] = {}
        self._latest: dict[str, int | None] = {}
        self._dirty: set[str] = set()
        self._identities: dict[tuple[str, str], str] = {}
        self.handoffs: list[str] = []
        self._seen: set[str] | None = None      # messageIds stored, or met in this session
        self._prefetched = False
        self._log: list[dict[str, Any]] = []    # messages to append to the log
        # With `defer_replays`, a merge leaves the replay of the merged lead's history to
        # after the commit: `replays` holds those leads, each with the models under which
        # the merged leads were MQLs before.
        self.defer_replays = False
        self.replays: dict[str, set[str]] = {}
        # Leads worked out before the write lock (`ingest.optimistic`): `offered` before
        # `prefetch`, which keeps in `accepted` those the store still holds as they were
        # read. Their rows are written as planned at `flush`; a lead later messages touch
        # (`adopted`) starts from its plan's states instead, and is saved as any other.
        self.offered: dict[str, LeadPlan] = {}
        self.accepted: dict[str, LeadPlan] = {}
        self.adopted: dict[str, LeadPlan] = {}
        self._followed: set[str] = set()

    # ---- loading

    def prefetch(self, messages: Sequence[Message]) -> None:
        """Read in a few statements what applying `messages` one by one would read message by
        message: which messageIds the log holds, the lead of each message (created where
        new), those leads locked with their accounts and saved states.

        The ids an identify or alias may link to a lead (anonymousId, previousId) are left to
        be resolved in order, as the messages come."""
        self._seen = lead_store.stored(self.connection, (m.message_id for m in messages))
        self._prefetched = True
        later: set[tuple[str, str]] = set()
        for m in messages:
            if m.type == "identify" and m.user_id is not None and m.anonymous_id is not None:
                later.add((ANONYMOUS, m.anonymous_id))
            elif m.type == "alias" and m.previous_id is not None:
                later |= {(USER, m.previous_id), (ANONYMOUS, m.previous_id)}
        keys, met = [], set(self._seen)
        for m in messages:
            if m.message_id in met:
                continue            # a duplicate makes no lead
            met.add(m.message_id)
            key = key_of(m)
            if key not in later:
                keys.append(key)
        found, created = lead_store.ensure_many(self.db, self.connection, keys, self.now)
        self._identities.update(found)
        self.offered, self._followed = vet(self.offered, messages, found, self._seen)
        if self._main is not None:
            self.load(found.values(), created)
        self.offered = {}           # those not accepted take the path of the others
        # A lead merged away by another worker since its identity was read: resolve again.
        self._identities = {k: v for k, v in self._identities.items()
                            if self._main is None or v in self._scorers}

    def load(self, lead_ids: Iterable[str], created: set[str] | frozenset[str] = frozenset()
             ) -> None:
        """Lock and load many leads (`created`: new in this transaction, so without events
        or state) in three statements, where not loaded yet."""
        wanted = {i for i in lead_ids if i not in self._scorers and i not in self.accepted}
        if self._main is None or not wanted:
            return
        rows = lead_store.load_many(self.connection, wanted, lock=self.write)
        saved = scores.states_many(self.connection, set(rows) - created,
                                   text=self.decoded is not None)
        for lead_id in sorted(rows):
            plan = self.offered.pop(lead_id, None)
            if plan is not None and lead_id not in created and plan.holds(
                    rows[lead_id], saved.get(lead_id, {})):
                if lead_id not in self._followed:
                    self.accepted[lead_id] = plan
                    continue
                # The plan's states go on changing here: it is spent (a retry of this
                # transaction takes the ordinary path for the lead).
                self.adopted[lead_id] = plan
                plan.spent = True
                self._dirty.add(lead_id)
                saved[lead_id] = {w.model: scores.SavedState(
                    lead_id, w.model, w.version, w.latest,
                    w.state if w.state is not None else json.loads(w.text))
                    for w in plan.written}
            self.install(lead_id, rows[lead_id], saved.get(lead_id, {}), lead_id in created)

    def seen(self, message_id: str) -> bool:
        """Whether the message is a duplicate: its messageId is stored, or was met before in
        this session (it is remembered as met). Without `prefetch`, the log is asked."""
        if self._seen is None:
            self._seen = set()
        if message_id in self._seen or (not self._prefetched and lead_store.stored(
                self.connection, [message_id])):
            return True
        self._seen.add(message_id)
        return False

    def scorer(self, lead_id: str) -> Scorer | None:
        """The scorer holding the lead (loaded on first use); None without models."""
        if self._main is None:
            return None
        found = self._scorers.get(lead_id)
        return found if found is not None else self._load(lead_id)

    def as_of(self, lead_id: str) -> int:
        latest = self._latest.get(lead_id)
        return self.now if latest is None else max(self.now, latest)

    def latest(self, lead_id: str) -> int | None:
        """The time of the lead's latest event, where it is loaded."""
        return self._latest.get(lead_id)

    def loaded(self, lead_id: str) -> Scorer | None:
        """The scorer holding the lead where it is loaded already (nothing is read)."""
        return self._scorers.get(lead_id)

    def compiled(self, name: str) -> CompiledModel:
        """The session's compiled model of that name."""
        assert self._main is not None
        return self._main.models[name]

    def replayed(self, lead_id: str) -> bool:
        """Whether the lead, loaded, was scored afresh from its log (not from its state)."""
        found = self._scorers.get(lead_id)
        return found is not None and found is not self._main

    def reader(self) -> Session:
        """A session reading saved states in this transaction, locking and writing nothing."""
        return Session(self.db, self.connection, list(self.models.values()), self.now,
                       write=False)

    def _load(self, lead_id: str) -> Scorer:
        row = lead_store.load(self.connection, lead_id, lock=self.write)
        if row is None:
            raise EngineError(f"no lead {lead_id!r} in the store")
        return self.install(lead_id, row, scores.states(self.connection, lead_id), False)

    def install(self, lead_id: str, row: LeadRow, saved: dict[str, Any], new: bool
                 ) -> Scorer:
        """Put a loaded lead in the scorer from its saved state, or replay its events where
        the state is missing or stale."""
        assert self._main is not None
        usable = {name: r.state for name, r in saved.items()
                  if name in self.models and r.model_version == self.models[name].version}
        latest = max((r.latest for r in saved.values() if r.latest is not None), default=None)
        if set(self.models) - set(usable) and (latest is not None or (
                not saved and not new and self._has_events(lead_id))):
            return self.rebuild(lead_id)
        try:
            if self.decoded is not None:      # states read as text (`load`): kept, or decoded
                usable = {name: self._decode(lead_id, name, state)
                          for name, state in usable.items()}
            self._main.load_state({"lead_id": lead_id, "traits": row.traits,
                                   "account": row.account, "latest": latest,
                                   "models": usable})
        except (EngineError, KeyError, TypeError, ValueError):
            return self.rebuild(lead_id)
        self._scorers[lead_id] = self._main
        self._latest[lead_id] = latest
        return self._main

    def _decode(self, lead_id: str, name: str, state: Any) -> Any:
        """A saved state as `load_state` takes it: the one kept decoded for this very text,
        else the text decoded (a state read one lead at a time comes decoded already)."""
        if not isinstance(state, str):
            return state
        assert self.decoded is not None
        kept = self.decoded.take(lead_id, name, self.models[name].version, state)
        return kept if kept is not None else json.loads(state)

    def _has_events(self, lead_id: str) -> bool:
        self.write_log()
        return lead_store.has_events(self.connection, lead_id)

    def rebuild(self, lead_id: str, prior: set[str] | None = None) -> Scorer:
        """Score the lead afresh from its events in the log (after a merge, an identify that
        brought anonymous history, a model change). `prior`: the models under which it was an
        MQL before; crossing the threshold now under another one raises a handoff."""
        if prior is None:
            prior = self._prior(lead_id)
        self.write_log()                # the log is read: it must hold the messages so far
        replayed = replay(self.connection, self._model_list, lead_id, lock=self.write)
        if replayed is None:
            raise EngineError(f"no lead {lead_id!r} in the store")
        return self._adopt(replayed, prior)

    def adopt(self, replayed: Replayed, prior: set[str]) -> bool:
        """Install a replay read in an earlier transaction (a merge's, read outside the write
        lock), the events logged since folded in, its profile as stored now; replayed here
        instead where the log changed under it in a way folding cannot follow. False (nothing
        done) where the lead was merged away or gained identities since: the merge that did
        it scores it again."""
        lead_id, connection = replayed.lead_id, self.connection
        row = lead_store.load(connection, lead_id, lock=self.write)
        if row is None or lead_store.resolve(connection, lead_id) != lead_id or frozenset(
                lead_store.owned_identities(connection, [lead_id])) != replayed.identities:
            return False
        prior = prior | scores.mql_models(connection, lead_id)
        if {n: m.model for n, m in self.models.items()} != {
                n: c.model for n, c in replayed.scorer.models.items()} or \
                not replayed.fold(connection):
            self.rebuild(lead_id, prior)
            return True
        lead = replayed.scorer.lead(lead_id)
        lead.traits, lead.account = row.traits, row.account
        self._adopt(replayed, prior)
        return True

    def _adopt(self, replayed: Replayed, prior: set[str]) -> Scorer:
        lead_id, scorer = replayed.lead_id, replayed.scorer
        self._scorers[lead_id] = scorer
        self._latest[lead_id] = replayed.latest
        self._settle(lead_id, scorer, replayed.crossings, prior)
        return scorer

    def _settle(self, lead_id: str, scorer: Scorer, crossings: Mapping[str, Handoff],
                prior: set[str]) -> None:
        """A lead scored from history, as of now: a handoff under each model it is an MQL
        under now and was not before (`prior`), with its latest crossing in that history."""
        self._dirty.add(lead_id)
        for update in scorer.identify(lead_id, as_of=self.as_of(lead_id)):
            if update.score.mql and update.score.model not in prior:
                self._handoff(lead_id, crossings.get(update.score.model) or update.handoff)

    def fold_many(self, events: Mapping[str, Sequence[Event]], profiles: Mapping[str, LeadRow],
                  new: Collection[str] = ()) -> None:
        """Many loaded leads changed at once (`ingest.bulk`): `profiles` their traits and
        account as stored now, `events` theirs to fold in (loaded before they were logged;
        any order). The events are folded by `Scorer.update_many` at their own times, and
        each lead is scored as of now as a replay is (`adopt`). `new`: leads created in this
        transaction (an MQL under no model before)."""
        self.accounts.relink |= set(profiles)
        if self._main is None:
            return
        leads = sorted(set(events) | set(profiles))
        prior = {lead: set() if lead in new else self._prior(lead) for lead in leads}
        groups: dict[int, tuple[Scorer, list[Event]]] = {}
        for lead_id in leads:
            scorer = self.scorer(lead_id)
            assert scorer is not None
            row = profiles.get(lead_id)
            if row is not None:
                lead = scorer.lead(lead_id)
                lead.traits, lead.account = row.traits, row.account
            mine = [e if e.lead_id == lead_id else dataclasses.replace(e, lead_id=lead_id)
                    for e in events.get(lead_id, ())]
            if mine:
                newest, latest = max(e.timestamp for e in mine), self._latest.get(lead_id)
                self._latest[lead_id] = newest if latest is None else max(latest, newest)
                self.accounts.events[lead_id] = mine[-1]
                groups.setdefault(id(scorer), (scorer, []))[1].extend(mine)
        crossings: dict[str, dict[str, Handoff]] = {}
        for scorer, batch in groups.values():        # a rebuilt lead has its own scorer
            for handoff in scorer.update_many(batch):
                crossings.setdefault(handoff.lead_id, {})[handoff.model] = handoff
        for lead_id in leads:
            self._settle(lead_id, self._scorers[lead_id], crossings.get(lead_id, {}),
                         prior[lead_id])

    def _prior(self, lead_id: str) -> set[str]:
        """Models under which the lead is an MQL now, before a change."""
        scorer = self._scorers.get(lead_id)
        if scorer is None:
            return scores.mql_models(self.connection, lead_id)
        as_of, lead = self.as_of(lead_id), scorer.lead(lead_id)
        return {name for name, model in scorer.models.items()
                if model.applies(lead) and scorer.score(lead_id, name, as_of=as_of).mql}

    def remember(self, kind: str, external_id: str, lead_id: str) -> None:
        """The identity's lead, known already (after a merge cleared what was remembered)."""
        self._identities[(kind, external_id)] = lead_id

    def ensure(self, kind: str, external_id: str) -> str:
        """The lead of a userId / anonymousId, created if new (remembered for the batch)."""
        key = (kind, external_id)
        found = self._identities.get(key)
        if found is None:
            found = self._identities[key] = lead_store.ensure(
                self.db, self.connection, kind, external_id, self.now)
        return found

    # ---- changes

    def event(self, lead_id: str, event: Event) -> bool:
        """Fold in a new event of the lead; whether it raised a handoff."""
        scorer = self.scorer(lead_id)
        if scorer is None:
            return False
        if event.lead_id != lead_id:
            event = dataclasses.replace(event, lead_id=lead_id)
        latest = self._latest.get(lead_id)
        self._latest[lead_id] = event.timestamp if latest is None else max(latest,
                                                                            event.timestamp)
        self._dirty.add(lead_id)
        self.accounts.events[lead_id] = event
        updates = scorer.update_one(event, as_of=self.as_of(lead_id))
        self._handoffs(lead_id, updates)
        return any(update.handoff is not None for update in updates)

    # ---- filters

    def verdict(self, lead_id: str, event: Event) -> str | None:
        """The filter that keeps a new event of the lead out of scoring, or None."""
        if self.filters is None:
            return None
        return which_filter(event, self._profile(lead_id), self.filters)

    def _profile(self, lead_id: str) -> Lead:
        scorer = self.scorer(lead_id)
        if scorer is not None:
            return scorer.lead(lead_id)
        row = lead_store.load(self.connection, lead_id)
        return Lead(lead_id, row.traits if row is not None else {})

    def refilter(self, lead_id: str) -> None:
        """After the lead's profile changed: `reflag`, and where that changed any event, the
        lead scored afresh from its log."""
        if self.reflag(lead_id) and self._main is not None and lead_id not in self.replays:
            self.rebuild(lead_id)

    def reflag(self, lead_id: str) -> bool:
        """The lead's logged events flagged by the filters on leads as it is now: flagged
        where it is one of ours, those flags lifted where it is not (a lead's history counts
        as the lead is now, as in batch). Whether any event changed."""
        if self.filters is None or not (self.filters.lead_ids or
                                        self.filters.internal_domains):
            return False
        row = lead_store.load(self.connection, lead_id)      # its traits as stored now
        verdict = lead_filter(Lead(lead_id, row.traits if row else {}), self.filters)
        self.write_log()
        return lead_store.refilter(self.connection, lead_id, verdict, LEAD_FILTERS) > 0

    def profile_changed(self, lead_id: str) -> None:
        """The lead's traits or account traits changed in the store: re-score its fit."""
        self.accounts.relink.add(lead_id)
        scorer = self.scorer(lead_id)
        if scorer is None:
            return
        row = lead_store.load(self.connection, lead_id)
        assert row is not None
        lead = scorer.lead(lead_id)
        lead.traits, lead.account = row.traits, row.account
        self._dirty.add(lead_id)
        self._handoffs(lead_id, scorer.identify(lead_id, as_of=self.as_of(lead_id)))

    def touch(self, lead_id: str) -> None:
        """Save the lead's score again (as of now) at the end, with a handoff where decay
        alone has lifted it over the MQL threshold (`Scorer.crossings`)."""
        scorer = self.scorer(lead_id)
        if scorer is not None:
            self._dirty.add(lead_id)
            for handoff in scorer.crossings(lead_id, as_of=self.as_of(lead_id)):
                self._handoff(lead_id, handoff)

    def merge(self, sources: Sequence[str], target: str) -> None:
        """Merge the leads `sources` into `target`; the target's traits and account are
        recomputed from the log by the stream rules, and it is scored from all their
        events."""
        prior = self._prior(target)
        for source in sources:
            prior |= self._prior(source)
        self.write_log()                # the log is read: it must hold the messages so far
        if self.defer_replays and self._main is not None:
            self.scorer(target)         # as it is before the merge: its state, not a replay
        for source in sources:
            lead_store.merge(self.connection, source, target, self.now)
            self._scorers.pop(source, None)
            self._latest.pop(source, None)
            self._dirty.discard(source)
        profile.recompute(self.connection, target, self.now)
        self.reflag(target)             # before it is replayed: as the merged lead is now
        self.accounts.relink |= {*sources, target}
        self._identities.clear()
        if self._main is None:
            return
        if not self.defer_replays:
            self.rebuild(target, prior)
            return
        # The merged history is replayed after the commit, outside the write lock
        # (`ingest.transaction.replay_merged`); until then the target keeps its own state,
        # with its new profile.
        for source in sources:
            prior |= self.replays.pop(source, set())
        self.replays[target] = self.replays.get(target, set()) | prior
        scorer = self.scorer(target)
        assert scorer is not None
        row = lead_store.load(self.connection, target)
        assert row is not None
        lead = scorer.lead(target)
        lead.traits, lead.account = row.traits, row.account
        self._dirty.add(target)

    # ---- handoffs and saving

    def _handoffs(self, lead_id: str, updates: list[Update]) -> None:
        for update in updates:
            if update.handoff is not None:
                self._handoff(lead_id, update.handoff)

    def _handoff(self, lead_id: str, handoff: Handoff | None) -> None:
        if handoff is None or not self.write:
            return
        payload = self.payload(lead_id, handoff)
        # Sales' routing: the owner goes into the payload; a lead rejected within the
        # cool-down is not handed off (leadscore.sales.assign).
        routed = route(self.db, self.connection, lead_id, handoff.model, payload, self.now)
        if routed is None:
            return
        if outbox.add(self.db, self.connection, handoff.id, "handoff", lead_id, handoff.model,
                      payload, self.now):
            routed.record(self.db, self.connection, handoff.id, lead_id, handoff.model, "lead",
                          self.now)
            self.handoffs.append(handoff.id)

    def payload(self, lead_id: str, handoff: Handoff) -> dict[str, Any]:
        """The handoff as delivered: the lead now, its reasons and the crossing event."""
        scorer = self._scorers[lead_id]
        score = scorer.score(lead_id, handoff.model, as_of=self.as_of(lead_id))
        row = lead_store.load(self.connection, lead_id)
        assert row is not None
        return {
            "id": handoff.id, "type": "handoff", "lead_id": lead_id, "model": handoff.model,
            "model_version": self.models[handoff.model].version, "at": iso(handoff.at),
            "traits": row.traits, "account": {"id": row.account_id, **row.account}
            if row.account_id else None,
            "score": score.score, "fit": score.fit, "engagement": score.engagement,
            "grade": score.grade, "temperature": score.temperature, "stage": score.stage,
            "reasons": [reason_json(scores.reason_dict(r)) for r in score.reasons],
            "event": event_json(handoff.event), **handoff_interests(score.interests),
        }

    def append(self, row: dict[str, Any]) -> None:
        """Add a message (a row of the log) to the log, with the others, at the latest at
        `flush`; an event's lead must be loaded before (a replay must not see it twice)."""
        self._log.append(row)

    def log_holds(self, types: Sequence[str], timestamp: int, message_id: str) -> None:
        """Before the log is asked whether a message of `types` later than (timestamp,
        messageId) is stored: append the messages held, where one of them could be such a
        message (in time order none is, and they wait for the one executemany)."""
        key = (timestamp, message_id)
        if any(row["type"] in types and (row["timestamp"], row["message_id"]) > key
               for row in self._log):
            self.write_log()

    def write_log(self) -> None:
        """Append the messages held so far to the log (one executemany)."""
        if self._log:
            lead_store.append(self.connection, self._log)
            self._log = []

    def flush(self) -> None:
        """Append the messages held, and save the state and score of every lead changed
        (one executemany per table)."""
        if not self.write:
            return
        # Before the leads' states are saved: an account's score before the change is read
        # from them.
        self.accounts.flush(self._dirty, score=self.score_accounts)
        self.write_log()
        saving = scores.Saving()
        self._saved = []
        planned = [(plan.lead_id, plan.now, plan.written) for plan in self.accepted.values()]
        self.accepted = {}
        for lead_id, now, written in [*((lead, self.now, self.written(lead))
                                        for lead in sorted(self._dirty)), *planned]:
            for row in written:
                saving.add(lead_id, row.model, row.version, row.latest, row.text, row.score,
                           now)
                if row.state is not None and self.decoded is not None:
                    self._saved.append((lead_id, row.model, row.version, row.text,
                                        row.state))
        saving.write(self.db, self.connection)
        self._dirty.clear()

    def written(self, lead_id: str) -> list[Written]:
        """The lead's rows as `flush` saves them now: under each model its state (as JSON
        text) and its score as of now."""
        scorer = self._scorers[lead_id]
        as_of, lead = self.as_of(lead_id), scorer.lead(lead_id)
        live, out = scorer.model_states(lead_id), []
        for name, active in self.models.items():
            model = scorer.models[name]
            state = live.get(name)
            out.append(Written(name, active.version, self._latest.get(lead_id),
                               dumps((state or ModelState(model)).to_dict()),
                               scorer.score(lead_id, name, as_of=as_of)
                               if model.applies(lead) else None, state))
        return out

    def release(self) -> None:
        """After the last `flush`, with nothing scored since: keep the states just saved
        decoded for the next transaction (`decoded`); the session must not be used after."""
        if self.decoded is not None:
            for lead_id, name, version, text, state in self._saved:
                self.decoded.keep(lead_id, name, version, text, state)
        self._saved = []

