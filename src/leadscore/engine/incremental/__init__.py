"""The incremental engine: one event or one trait update at a time, constant work per event.

`Scorer` (scorer.py) is its public face. It keeps a `Book` of every lead's state (lead_state.py,
rule_state.py), folds an event in with `fold_one` (through the rule `dispatch`, `lifecycle`,
`customers`, `interests`, `program_points`) and evaluates the lead (`evaluate`: `fit`,
`engagement`, stage). `fold_many/` is the vectorised twin of `fold_one` for many events at
once; `accounts` scores the leads' accounts beside a Scorer.
"""

from leadscore.engine.incremental.scorer import Scorer

__all__ = ["Scorer"]
