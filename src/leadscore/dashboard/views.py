"""What each dashboard page shows, read from the service and the store (no HTML here)."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from leadscore.dashboard.history import History, history, sparkline
from leadscore.model.compiled import CompiledModel, compile_model
from leadscore.model.loader import load_model
from leadscore.model.schema import STAGES, Model  # STAGES: the model's order, re-exported
from leadscore.service import Service
from leadscore.store import dashboard as queries
from leadscore.store import leads as lead_store
from leadscore.timeutil import US_PER_DAY, iso, now_us

GRADES = ("A", "B", "C", "D", "F")
TEMPERATURES = ("hot", "warm", "cold", "dead")
MQL_DAYS = 30


@dataclass(frozen=True)
class ActiveModel:
    name: str
    version: int
    model: Model
    compiled: CompiledModel


_cache: dict[tuple[str, int], ActiveModel] = {}
_cache_lock = threading.Lock()


def active_models(service: Service) -> dict[str, ActiveModel]:
    """The active models by name, parsed once per version."""
    out = {}
    for status in service.models():
        key = (status["name"], int(status["version"]))
        with _cache_lock:
            found = _cache.get(key)
        if found is None:
            model = load_model(f"{key[0]}@v{key[1]}.yaml", text=service.model(key[0]))
            found = ActiveModel(key[0], key[1], model, compile_model(model))
            with _cache_lock:
                _cache[key] = found
        out[key[0]] = found
    return out


def display_name(traits: dict[str, Any], lead_id: str) -> str:
    first = traits.get("first_name") or traits.get("firstName") or ""
    last = traits.get("last_name") or traits.get("lastName") or ""
    name = traits.get("name") or f"{first} {last}".strip()
    return str(name or traits.get("email") or lead_id)


# ---- leads


def leads_page(service: Service, f: queries.LeadFilter, limit: int, cursor: str | None
               ) -> tuple[queries.LeadPage, list[str]]:
    with service.db.read() as connection:
        page = queries.list_page(connection, f, limit=limit, cursor=cursor)
        stages = queries.stage_values(connection, f.model)
    for row in page.rows:
        traits = row["traits"] or {}
        row["name"] = display_name(traits, row["lead_id"])
        row["email"] = traits.get("email")
        row["account"] = traits.get("company") or row["account_id"]
    order = {s: i for i, s in enumerate(STAGES)}
    return page, sorted(stages, key=lambda s: (order.get(s, 99), s))


def sparklines(service: Service, model: ActiveModel, lead_ids: list[str]
               ) -> dict[str, list[float]]:
    """The last 30 days of score of each lead, replayed from its events."""
    out: dict[str, list[float]] = {}
    now = now_us()
    with service.db.read() as connection:
        for lead_id in lead_ids[:100]:
            row = lead_store.load(connection, lead_id)
            if row is None:
                continue
            events = lead_store.events_of(connection, lead_id)
            latest = max((e.timestamp for e in events), default=now)
            out[lead_id] = sparkline(model.model, lead_id, row.traits, row.account or {},
                                     events, max(now, latest))
    return out


# ---- a lead


@dataclass
class LeadView:
    lead: dict[str, Any]            # Service.get_lead
    history: History | None
    waterfall: list[dict[str, Any]]
    handoffs: list[dict[str, Any]]
    name: str


def lead_view(service: Service, lead_id: str, model: str | None) -> LeadView:
    lead = service.get_lead(lead_id, model)
    found = lead["lead_id"]
    models = active_models(service)
    with service.db.read() as connection:
        events = lead_store.events_of(connection, found)
        handoffs = queries.lead_handoffs(connection, found)
    chosen = models.get(lead["model"]) if lead.get("model") else None
    replay = None
    if chosen is not None and lead.get("as_of"):
        from leadscore.timeutil import parse_timestamp

        replay = history(chosen.model, chosen.compiled, found, lead["traits"] or {},
                         lead["account"] or {}, events, parse_timestamp(lead["as_of"]))
    return LeadView(lead, replay, waterfall(lead.get("reasons") or []), handoffs,
                    display_name(lead["traits"] or {}, found))


def waterfall(reasons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reasons as steps from 0 to the score: fit first, then engagement, each by size;
    `start`/`end` are the running total before and after the step."""
    order = {"fit": 0, "disqualify": 0, "engagement": 1}
    steps = sorted((r for r in reasons if r.get("points") or r.get("kind") == "disqualify"),
                   key=lambda r: (order.get(r.get("kind", ""), 2), -abs(r["points"])))
    out, running = [], 0.0
    for reason in steps:
        start, running = running, running + reason["points"]
        out.append({**reason, "start": start, "end": running})
    low = min([0.0, *(s["end"] for s in out)])
    high = max([0.0, *(s["end"] for s in out)])
    span = (high - low) or 1.0
    for step in out:
        left = min(step["start"], step["end"])
        step["left"] = (left - low) / span * 100
        step["width"] = max(abs(step["points"]) / span * 100, 0.4)
    return out


# ---- pipeline


def pipeline(service: Service, model: str) -> dict[str, Any]:
    now = now_us()
    with service.db.read() as connection:
        groups = queries.pipeline(connection, model)
        handoffs = queries.handoffs_since(connection, model, now - 90 * US_PER_DAY)
    stages: Counter[str] = Counter()
    grid: Counter[tuple[str, str]] = Counter()
    reasons: Counter[str] = Counter()
    total = 0
    for g in groups:
        total += g["n"]
        stages[g["stage"]] += g["n"]
        grid[(g["grade"] or "F", g["temperature"] or "dead")] += g["n"]
        if g["disqualified"]:
            reasons[g["disqualify_reason"] or "(no reason)"] += g["n"]
    order = {s: i for i, s in enumerate(STAGES)}
    funnel = sorted(stages.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))
    # A funnel counts each stage and every stage past it (a customer was once a lead).
    reached = []
    for i, (stage, n) in enumerate(funnel):
        reached.append({"stage": stage, "now": n, "reached": sum(m for _, m in funnel[i:])})
    today = now // US_PER_DAY
    per_day: Counter[int] = Counter()
    for h in handoffs:
        at = (h["payload"] or {}).get("at")
        from leadscore.timeutil import parse_timestamp

        when = parse_timestamp(at) if at else h["created_at"]
        day = when // US_PER_DAY
        if today - day < MQL_DAYS:
            per_day[day] += 1
    days = [(iso(d * US_PER_DAY)[:10], per_day.get(d, 0))
            for d in range(today - MQL_DAYS + 1, today + 1)]
    return {"total": total, "funnel": reached, "grid": grid,
            "grid_top": max(grid.values(), default=0), "disqualified": reasons.most_common(),
            "mql_days": days, "mql_total": sum(n for _, n in days)}


# ---- model


def rules_table(model: Model, counts: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The model's rules as rows: kind, what it looks at, its points, how often it fired."""
    rows: list[dict[str, Any]] = []
    for rule in model.fit:
        if rule.bands:
            what = (f"{rule.attribute} in bands" if rule.age_of is None
                    else f"age of {rule.age_of} in days, in bands")
            points = "; ".join(f"{_condition(b.condition)} → {b.points:+g}" for b in rule.bands)
        else:
            what, points = _condition(rule.when), f"{rule.points:+g}"
        kind = "disqualify" if rule.disqualify else "fit"
        rows.append({"name": rule.name, "kind": kind, "what": what,
                     "points": f"→ {rule.disqualify}" if rule.disqualify else points,
                     "detail": "", **_fired(counts, rule.name)})
    for erule in model.engagement.rules:
        what = (f"event {', '.join(erule.events)}" if erule.event is not None
                else f"page {', '.join(erule.pages)}")
        if erule.where:
            what += f" where {_condition(erule.where)}"
        half_life = model.rule_half_life(erule)
        detail = ", ".join(part for part in (
            f"limit {erule.limit}" if erule.limit else "",
            f"distinct {erule.distinct}" if erule.distinct else "",
            f"cap {erule.cap:g}" if erule.cap is not None else "",
            f"half-life {half_life:g} d" if half_life else "no decay") if part)
        rows.append({"name": erule.name, "kind": "engagement", "what": what,
                     "points": f"{erule.points:+g}", "detail": detail,
                     **_fired(counts, erule.name)})
    return rows


def _condition(value: Any) -> str:
    if not value:
        return ""
    import json

    return json.dumps(value, default=str, ensure_ascii=False)[:120]


def _fired(counts: dict[str, dict[str, float]], name: str) -> dict[str, Any]:
    found = counts.get(name, {"leads": 0, "matched": 0})
    return {"leads": int(found["leads"]), "matched": int(found["matched"])}


def eligible_grade(model: Model, grade: str | None) -> bool:
    """Does the grade meet `mql_requires_grade`?"""
    wanted = model.thresholds.mql_requires_grade if model.thresholds else None
    if wanted is None:
        return True
    letters = [letter for letter, _ in model.grade_order()] + ["F"]
    order = {letter: i for i, letter in enumerate(letters)}
    return order.get(grade or "F", 99) <= order.get(wanted, 99)


def model_view(service: Service, active: ActiveModel) -> dict[str, Any]:
    with service.db.read() as connection:
        counts, read = queries.rule_counts(connection, active.name)
        histogram = queries.score_histogram(connection, active.name)
    points: dict[int, int] = defaultdict(int)
    eligible: dict[int, int] = defaultdict(int)
    for row in histogram:
        points[int(row["point"])] += row["n"]
        if not row["disqualified"] and eligible_grade(active.model, row["grade"]):
            eligible[int(row["point"])] += row["n"]
    low, high = (min(points), max(points)) if points else (0, 0)
    bins = 5 if high - low > 60 else 1
    shown: dict[int, int] = defaultdict(int)
    for p, n in points.items():
        shown[p - p % bins] += n
    distribution = [(f"{p:g} to {p + bins:g}" if bins > 1 else f"{p}", n)
                    for p, n in sorted(shown.items())]
    threshold = active.model.thresholds.mql if active.model.thresholds else None
    return {"rules": rules_table(active.model, counts), "sampled": read,
            "distribution": distribution, "eligible": sorted(eligible.items()),
            "low": low, "high": high + 1, "threshold": threshold,
            "versions": service.model_versions(active.name),
            "status": service.model_status(active.name),
            "total": sum(points.values())}
