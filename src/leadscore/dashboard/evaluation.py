"""The evaluation page's backtest: the store's event log and leads exported to the learn
module (`leadscore.learn.evaluate`), each model against its own conversion event.

A model's conversion is the event of its `customer` lifecycle stage (`Order Completed` for the
art shop, `Contract Signed` for the software vendor) unless another is given. The run takes
seconds to minutes, so it runs in a thread; its HTML report and, per whole point of score at
the cut-off, the leads and conversions (for the model page's what-if) are kept in memory.
"""

from __future__ import annotations

import functools
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadscore.model.schema import Model
from leadscore.service import Service
from leadscore.store import dashboard as queries
from leadscore.timeutil import US_PER_DAY, iso


@functools.cache
def available() -> str | None:
    """Why the backtest cannot run here, or None."""
    try:
        import altair  # noqa: F401
        import pandas  # noqa: F401
        import vl_convert  # noqa: F401
    except ImportError as exc:
        return (f"the backtest needs the learn extra (pip install 'leadscore[learn]'): "
                f"{exc.name} is missing")
    return None


def conversion_event(model: Model) -> str | None:
    """The event of the model's `customer` stage, if it has one."""
    for rule in model.lifecycle:
        if rule.stage == "customer" and rule.on is not None and rule.on.events:
            return rule.on.events[0]
    return None


@dataclass
class Result:
    model: str
    event: str
    as_of: str
    window_days: float | None
    html: str
    leads: int
    conversions: int
    # whole point of score at the cut-off → [leads that could be handed off, conversions]
    by_point: dict[int, list[int]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Evaluations:
    """The latest backtest of each model, and the one running (if any)."""

    results: dict[str, Result] = field(default_factory=dict)
    running: str | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, service: Service, models: list[Model], *, days_back: float = 30,
              window_days: float | None = None, events: dict[str, str] | None = None,
              background: bool = True) -> bool:
        """Start a backtest of `models` as of `days_back` days before the last event; False
        if one is running already."""
        with self.lock:
            if self.running is not None:
                return False
            self.running, self.error = ", ".join(m.name for m in models), None

        def run() -> None:
            try:
                for model in models:
                    event = (events or {}).get(model.name) or conversion_event(model)
                    if event is None:
                        raise ValueError(f"model {model.name!r} has no customer stage event: "
                                         "give the conversion event")
                    result = backtest(service, model, event, days_back, window_days)
                    with self.lock:
                        self.results[model.name] = result
            except Exception as exc:  # shown on the page, the server keeps running
                with self.lock:
                    self.error = f"{type(exc).__name__}: {exc}"
            finally:
                with self.lock:
                    self.running = None

        if background:
            threading.Thread(target=run, name="dashboard-backtest", daemon=True).start()
        else:
            run()
        return True


def backtest(service: Service, model: Model, event: str, days_back: float,
             window_days: float | None) -> Result:
    import pyarrow as pa

    from leadscore.learn import evaluate
    from leadscore.learn.report import write_html

    started = time.perf_counter()
    with service.db.read() as connection:
        events = queries.export_events(connection)
        leads = queries.export_leads(connection)
    if not events:
        raise ValueError("the store has no events to backtest")
    end = max(e["timestamp"] for e in events)
    cut = end - int(days_back * US_PER_DAY)
    with tempfile.TemporaryDirectory(prefix="leadscore-backtest-") as folder:
        path = Path(folder) / "events.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for e in events:
                message = {**e["message"], "userId": e["lead_id"],
                           "timestamp": iso(e["timestamp"])}
                message.pop("anonymousId", None)
                out.write(json.dumps(message, default=str) + "\n")
        table = _leads_table(pa, leads)
        backtest_ = evaluate(model, str(path), table, f"event:{event}", as_of=cut,
                             window_days=window_days, replicates=50)
        report = Path(folder) / "report.html"
        write_html(backtest_, report, png=False)
        html = report.read_text(encoding="utf-8")
    evaluation = backtest_.evaluations[0]
    # The backtest's frame has no grade: the estimate leaves out the disqualified only.
    by_point: dict[int, list[int]] = {}
    frame = evaluation.scores
    for score, disqualified, converted in zip(frame["score"], frame["disqualified"],
                                              frame["converted"], strict=True):
        if disqualified:
            continue
        point = by_point.setdefault(int(score // 1), [0, 0])
        point[0] += 1
        point[1] += int(converted)
    body = html.split("<body>", 1)[-1].rsplit("</body>", 1)[0]
    return Result(model.name, event, evaluation.as_of, window_days, body, evaluation.leads,
                  evaluation.conversions, by_point, time.perf_counter() - started)


def _leads_table(pa: Any, leads: list[dict[str, Any]]) -> Any:
    rows = []
    for lead in leads:
        row = {"lead_id": lead["lead_id"]}
        row.update({k: v for k, v in lead["traits"].items()
                    if isinstance(v, str | int | float | bool) or v is None})
        row.update({f"account.{k}": v for k, v in lead["account"].items()
                    if isinstance(v, str | int | float | bool) or v is None})
        rows.append(row)
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A trait with values of several types: read it as text.
        return pa.Table.from_pylist([{k: v if k == "lead_id" or v is None else str(v)
                                      for k, v in row.items()} for row in rows])
