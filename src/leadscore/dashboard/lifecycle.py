"""What the lifecycle pages show: a lead's interests and journeys, segments with their sizes
over time and members, programs with their funnel and journeys, and the outbox of program
e-mails. Read from the store (no HTML here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leadscore.dashboard.views import display_name
from leadscore.programs.definition import Program
from leadscore.programs.entry import history_count
from leadscore.programs.optouts import address_status
from leadscore.programs.scheduler import dead_actions, funnel, journey_rows, outbox_view
from leadscore.segments import live as segment_store
from leadscore.segments.definition import Segment
from leadscore.service import Service
from leadscore.store import leads as lead_store
from leadscore.store.lifecycle import actions
from leadscore.timeutil import US_PER_DAY, now_us

SIZE_DAYS = 30
OUTBOX_STATUSES = ("pending", "claimed", "sending", "sent", "failed", "unknown", "dead")


def lead_interests(service: Service, lead_id: str, model: str | None, top: int = 10
                   ) -> list[tuple[str, float]]:
    """The lead's interest profile under `model`, highest weight first."""
    if model is None:
        return []
    with service.db.read() as connection:
        facts = segment_store.facts_in(service, connection, lead_id, model, now_us())
    return sorted(facts.interests.items(), key=lambda p: (-p[1], p[0]))[:top]


def lead_email(service: Service, lead_id: str, traits: dict[str, Any]) -> dict[str, Any]:
    """Whether programs can e-mail the lead, and why not."""
    with service.db.read() as connection:
        return address_status(connection, lead_id, traits)


def dead_program_actions(service: Service) -> list[dict[str, Any]]:
    with service.db.read() as connection:
        return dead_actions(connection)


def lead_journeys(service: Service, lead_id: str) -> list[dict[str, Any]]:
    with service.db.read() as connection:
        return journey_rows(connection, lead_id=lead_id, limit=200)


@dataclass
class SegmentRow:
    name: str
    model: str | None
    description: str | None
    size: int
    sizes: list[tuple[int, int]]     # (hour in µs, size), oldest first, last SIZE_DAYS days


def segments_overview(service: Service, segments: list[Segment]) -> list[SegmentRow]:
    since = now_us() - SIZE_DAYS * US_PER_DAY
    out = []
    with service.db.read() as connection:
        for row in segment_store.listing(connection, segments):
            sizes = [(s["at"], s["size"]) for s in segment_store.sizes(connection, row["name"])
                     if s["at"] >= since]
            out.append(SegmentRow(row["name"], row["model"], row["description"], row["size"],
                                  sizes))
    return out


def segment_members(service: Service, segment: str, limit: int, offset: int
                    ) -> tuple[list[dict[str, Any]], int]:
    with service.db.read() as connection:
        rows, total = segment_store.members(connection, segment, limit, offset)
        for row in rows:
            lead = lead_store.load(connection, row["lead_id"])
            traits = lead.traits if lead else {}
            row["name"] = display_name(traits or {}, row["lead_id"])
    return rows, total


def programs_overview(service: Service, programs: list[Program]) -> list[dict[str, Any]]:
    with service.db.read() as connection:
        return [{**funnel(connection, p), "model": p.model, "description": p.description,
                 "enter": _entry(p), "enabled": p.enabled} for p in programs]


def history_events(service: Service) -> int:
    """Events that scored but enrolled no one: imported, or too old when they arrived."""
    with service.db.read() as connection:
        return history_count(connection)


def _entry(program: Program) -> str:
    if program.enter_segment:
        return f"entering segment {program.enter_segment}"
    if program.enter_event is not None:
        return "on an event"
    return ""


def program_detail(service: Service, program: Program, lead_id: str | None, limit: int = 200
                   ) -> dict[str, Any]:
    with service.db.read() as connection:
        summary = funnel(connection, program)
        journeys = journey_rows(connection, program.name, lead_id, limit=limit) if lead_id \
            else list(reversed(_latest_journeys(connection, program.name, limit)))
    return {"funnel": summary, "journeys": journeys}


def _latest_journeys(connection: Any, program: str, limit: int) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from leadscore.store.lifecycle import journeys
    from leadscore.timeutil import iso

    query = select(journeys).where(journeys.c.program == program).order_by(
        journeys.c.at.desc(), journeys.c.key.desc()).limit(limit)
    return [{"lead_id": r.lead_id, "program": r.program, "step": r.step, "action": r.action,
             "at": iso(r.at), "detail": r.detail} for r in connection.execute(query)]


def outbox(service: Service, status: str | None, limit: int, offset: int
           ) -> tuple[list[dict[str, Any]], int]:
    from sqlalchemy import func, select

    with service.db.read() as connection:
        rows = outbox_view(connection, status, limit, offset)
        where = [actions.c.kind == "email"] + (
            [actions.c.status == status] if status is not None else [])
        total = connection.execute(select(func.count()).select_from(actions).where(
            *where)).scalar()
    return rows, int(total or 0)


def segment_leads_page(service: Service, f: Any, segment: str, limit: int,
                       cursor: str | None) -> tuple[Any, list[str]]:
    """The leads list (as `views.leads_page`) restricted to a segment's members."""
    from leadscore.dashboard.views import STAGES
    from leadscore.store import dashboard as queries
    from leadscore.store.dashboard_segments import segment_page

    with service.db.read() as connection:
        page = segment_page(connection, f, segment, limit=limit, cursor=cursor)
        stages = queries.stage_values(connection, f.model)
    for row in page.rows:
        traits = row["traits"] or {}
        row["name"] = display_name(traits, row["lead_id"])
        row["email"] = traits.get("email")
        row["account"] = traits.get("company") or row["account_id"]
    order = {s: i for i, s in enumerate(STAGES)}
    return page, sorted(stages, key=lambda s: (order.get(s, 99), s))
