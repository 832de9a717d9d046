"""`leadscore score … --state DIR`: the batch plan's per-lead aggregate kept on disk and folded
forward, so a daily run reads only the files it has not read (`store.score_with_state`); over
a Segment message stream the state keeps the messages too (`stream.score_stream_with_state`)."""

from leadscore.engine.batch.state.store import RunReport, score_with_state
from leadscore.engine.batch.state.stream import accounts_with_state, score_stream_with_state

__all__ = ["RunReport", "accounts_with_state", "score_stream_with_state", "score_with_state"]
