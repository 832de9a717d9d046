"""Points and stages a nurture program gives a lead through events (model.program_events):
`Program Points Added` per (program, reason), decayed under the model's half-life, and the
latest `Lifecycle Stage Set`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from leadscore.engine.incremental.rule_state import DecayedSum
from leadscore.model.program_events import points_reason, program_points, stage_set

if TYPE_CHECKING:
    from leadscore.engine.incremental.lead_state import ModelState
    from leadscore.events import Event
    from leadscore.model.compiled import CompiledModel


class ProgramPoints:
    """The points one program added for one reason to one lead (`Program Points Added`),
    decayed under the model's half-life; positive and negative events summed apart, as the
    engine's engagement bound counts only the positive ones."""

    __slots__ = ("last", "matched", "negative", "positive")

    def __init__(self) -> None:
        self.positive = DecayedSum()
        self.negative = DecayedSum()
        self.matched = 0
        self.last: int | None = None

    def add(self, points: float, ts: int, half_life: float | None) -> None:
        (self.positive if points > 0 else self.negative).add(points, ts, half_life)
        self.matched += 1
        if self.last is None or ts > self.last:
            self.last = ts

    def value(self, as_of: int, half_life: float | None) -> float:
        return self.positive.value(as_of, half_life) + self.negative.value(as_of, half_life)

    def to_list(self) -> list[Any]:
        return [self.positive.ref, self.positive.total, self.negative.ref, self.negative.total,
                self.matched, self.last]

    @classmethod
    def from_list(cls, data: list[Any]) -> ProgramPoints:
        state = cls()
        state.positive.ref, state.positive.total = int(data[0]), float(data[1])
        state.negative.ref, state.negative.total = int(data[2]), float(data[3])
        state.matched, state.last = int(data[4]), data[5]
        return state


def fold_program_event(model: CompiledModel, state: ModelState, event: Event) -> None:
    """Fold in a `Program Points Added` / `Lifecycle Stage Set` event (model.program_events)."""
    ts = event.timestamp
    points = program_points(event, model.name)
    if points is not None:
        half_life = model.program_half_life
        if state.program is None:
            state.program = {}
        key = points_reason(event)
        group = state.program.get(key)
        if group is None:
            group = state.program[key] = ProgramPoints()
        group.add(points, ts, half_life)
        if points > 0:
            state.bound += points
        sums = state.sums if points > 0 else state.negative
        sums.setdefault(half_life, DecayedSum()).add(points, ts, half_life)
    rank = stage_set(event, model.name)
    if rank is not None:
        old = state.stage_set
        if old is None or ts > old[0] or (ts == old[0] and rank < old[1]):
            state.stage_set = (ts, rank)
