"""The incremental engine: one event or one trait update at a time, constant work per event.

`Scorer` is its public face; `fold_many/` is its vectorised twin for many events at once.
"""

from leadscore.engine.incremental.scorer import Scorer

__all__ = ["Scorer"]
