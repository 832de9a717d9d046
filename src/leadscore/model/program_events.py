"""Events that programs raise, with the same meaning in every model and engine (issue #7).

- `Program Points Added` {points, reason, program}: `properties.points` (a number, or a numeric
  string, with |points| ≤ MAX_POINTS) is added to engagement, decaying under the model's
  `engagement.decay`; every such event counts (no limit, no cap).
- `Lifecycle Stage Set` {stage, program}: sets the stage to `properties.stage` (one of STAGES)
  as a `back: true` lifecycle event does, so it can move a lead forward or back.

- Sales' feedback (issue #18), as a CRM sends it: `Lead Accepted` (→ `sal`), `Lead Qualified`
  (→ `sql`), `Lead Rejected` {reason} (→ `rejected`), `Lead Recycled` (→ `recycled`),
  `Opportunity Created` (→ `opportunity`), `Opportunity Won` (→ `customer`) and `Opportunity
  Lost` (→ `recycled`) each set the stage as `Lifecycle Stage Set` does.

Either applies to every model, unless `properties.model` names one: then only to that model.
Both are track (or screen) events; a page view never is one. See docs/model-format.md,
"program events".
"""

from __future__ import annotations

from leadscore.events import Event
from leadscore.model.conditions import as_number
from leadscore.model.schema import STAGES

POINTS_EVENT = "Program Points Added"
STAGE_EVENT = "Lifecycle Stage Set"
# Sales' verdicts and the stage each sets (`leadscore.sales.feedback` names their statuses).
FEEDBACK_STAGES = {
    "Lead Accepted": "sal", "Lead Qualified": "sql", "Lead Rejected": "rejected",
    "Lead Recycled": "recycled", "Opportunity Created": "opportunity",
    "Opportunity Won": "customer", "Opportunity Lost": "recycled",
}
NAMES = frozenset((POINTS_EVENT, STAGE_EVENT, *FEEDBACK_STAGES))
# Larger magnitudes earn nothing: they are data errors, and the batch engine sums exactly in
# fixed-point decimals of bounded size.
MAX_POINTS = 1_000_000.0
STAGE_RANKS = {stage: rank for rank, stage in enumerate(STAGES)}


def _for(event: Event, name: str, model: str) -> bool:
    if event.type == "page" or event.event != name:
        return False
    target = event.get("properties.model")
    return target is None or target == model


def program_points(event: Event, model: str) -> float | None:
    """The points a `Program Points Added` event adds under `model`, or None."""
    if not _for(event, POINTS_EVENT, model):
        return None
    points = as_number(event.get("properties.points"))
    if points is None or abs(points) > MAX_POINTS:
        return None
    return points


def stage_set(event: Event, model: str) -> int | None:
    """The stage rank a `Lifecycle Stage Set` or a feedback event sets under `model`, or
    None."""
    feedback = FEEDBACK_STAGES.get(event.event or "")
    if feedback is not None:
        return STAGE_RANKS[feedback] if _for(event, str(event.event), model) else None
    if not _for(event, STAGE_EVENT, model):
        return None
    stage = event.get("properties.stage")
    return STAGE_RANKS.get(stage) if isinstance(stage, str) else None


def points_reason(event: Event) -> tuple[str, str]:
    """(program, reason) of a points event, as the explanation names it ("" when absent)."""
    program, reason = event.get("properties.program"), event.get("properties.reason")
    return ("" if program is None else str(program), "" if reason is None else str(reason))
