"""A lead's engine state loaded and saved: its stored JSON decoded (`json.loads` +
`ModelState.from_dict`, what every transaction did for every lead it touched), encoded
(`to_dict` + the store's JSON encoder), and taken from `ingest.decoded.DecodedStates` (what
a transaction does now where the stored text is the one kept). CPU µs per state, medians of
`--rounds`.

    python benchmarks/bench_lead_state.py [--events 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from leadscore import load_model
from leadscore.engine.incremental import Scorer
from leadscore.engine.incremental.lead_state import ModelState
from leadscore.events import Event
from leadscore.ingest.decoded import DecodedStates
from leadscore.jsontext import dumps
from leadscore.timeutil import US_PER_DAY, now_us

MODEL = Path(__file__).resolve().parents[1] / "tests" / "api" / "models" / "web.yaml"


def per_state(work: object, n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        work()  # type: ignore[operator]
    return 1e6 * (time.process_time() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20, help="events folded into the lead")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=5000, help="loads per round")
    args = parser.parse_args()
    scorer = Scorer([load_model(MODEL)])
    now = now_us()
    for i in range(args.events):
        at = now - (args.events - i) * US_PER_DAY // 4
        event = Event("ann", at, "page", path="/pricing") if i % 3 == 2 else Event(
            "ann", at, event=("Clicked", "Demo Requested")[i % 7 == 6], properties={"n": i})
        scorer.update_one(event, as_of=now)
    compiled = scorer.models["web"]
    state = scorer.model_states("ann")["web"]
    text = dumps(state.to_dict())
    cache = DecodedStates()
    figures: dict[str, list[float]] = {"decode": [], "encode": [], "take_and_keep": []}
    for _ in range(args.rounds):
        figures["decode"].append(per_state(
            lambda: ModelState.from_dict(compiled, json.loads(text)), args.n))
        figures["encode"].append(per_state(lambda: dumps(state.to_dict()), args.n))

        def take_and_keep() -> None:
            cache.keep("ann", "web", 1, text, state)
            cache.take("ann", "web", 1, text)

        figures["take_and_keep"].append(per_state(take_and_keep, args.n))
    print(json.dumps({"state_bytes": len(text.encode()), "events": args.events,
                      **{f"{k}_us": round(statistics.median(v), 2) for k, v in figures.items()},
                      "rounds": figures}, indent=2))


if __name__ == "__main__":
    main()
