"""Step 0 of the vectorised fold: the events as columns (`EventColumns`), and the small numpy
helpers every step uses — values numbered, runs scanned, conditions and calendar days computed
once per distinct value, each exact (no float reduction across runs, no lossy key)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from leadscore.model import conditions as cond
from leadscore.timeutil import US_PER_DAY, local_day, utc_offset_us

if TYPE_CHECKING:
    from leadscore.engine.incremental.book import Book
    from leadscore.engine.incremental.lead_state import LeadState
    from leadscore.events import Event

Array = Any                     # a numpy array (numpy's stubs are not worth the noise here)
NONE = np.iinfo(np.int64).min   # "no time" in an int64 column
US_PER_HOUR = 3_600_000_000


def encode(values: list[Any]) -> tuple[list[Any], Array]:
    """The distinct values (in order of appearance) and each value's number among them."""
    numbers: dict[Any, Any] = dict.fromkeys(values)
    for number, value in enumerate(numbers):
        numbers[value] = number
    return list(numbers), np.fromiter(map(numbers.__getitem__, values), np.int64, len(values))


def encode_strings(values: list[Any]) -> tuple[list[Any], Array]:
    """`encode` of strings, by Arrow's dictionary encoding (4× faster for many)."""
    try:
        encoded = pa.array(values, pa.string()).dictionary_encode()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return encode(values)
    return (encoded.dictionary.to_pylist(),
            encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64))


def getter(path: str) -> Callable[[Event], Any]:
    """`Event.get(path)` as a function, direct for the common paths."""
    root, _, rest = path.partition(".")
    if root == "properties" and rest and "." not in rest:
        return lambda event: event.properties.get(rest)
    if not rest and root in ("event", "type", "path"):
        return attrgetter(root)
    return lambda event: event.get(path)


# Bucket keys back from their codes, many at once: `once` (None), a day or week, a distinct
# value, or both.

def once_keys(codes: Array) -> list[Any]:
    return [None] * len(codes)


def period_keys(low: int, codes: Array) -> list[Any]:
    return (codes + low).tolist()


def value_keys(names: list[Any], codes: Array) -> list[Any]:
    return list(map(names.__getitem__, codes.tolist()))


def value_period_keys(names: list[Any], low: int, codes: Array) -> list[Any]:
    return list(zip(map(names.__getitem__, (codes >> 32).tolist()),
                    ((codes & 0xFFFFFFFF) + low).tolist(), strict=True))


def holds(where: cond.Condition, events: Sequence[Event], at: Array) -> Array:
    """Whether `where` holds for each event of `at`: evaluated once per distinct value of the
    paths it reads (per event where a value cannot be a dict key)."""
    chosen = list(map(events.__getitem__, at.tolist()))
    read = sorted(cond.paths(where))
    # each value with its type: 1, 1.0 and True are one dict key but not one value here
    values = list(zip(*(((v.__class__, v) for v in map(getter(path), chosen))
                        for path in read), strict=True))
    try:
        known: dict[Any, bool] = {}
        for value in set(values):
            found = {path: v for path, (_, v) in zip(read, value, strict=True)}
            known[value] = cond.evaluate(where, found.get)
        return np.fromiter(map(known.__getitem__, values), bool, len(values))
    except TypeError:           # an unhashable value (a list, an object)
        return np.array([cond.evaluate(where, event.get) for event in chosen], bool)


def by_bucket(lead: Array, rule: Array, bucket: Array, leads: int, rules: int,
               then: Array | None = None) -> Array:
    """The order that sorts pairs by lead, rule and bucket (then by `then`, where the pairs
    come in its order: the sort is stable): one argsort of a combined key where it fits."""
    codes, dense = np.unique(bucket, return_inverse=True)
    if leads * max(rules, 1) * max(len(codes), 1) < 2**62:
        key = (lead * max(rules, 1) + rule) * max(len(codes), 1) + dense
        return np.argsort(key, kind="stable" if then is not None else None)
    keys = (bucket, rule, lead) if then is None else (then, bucket, rule, lead)
    return np.lexsort(keys)


def run_rank(keys: Array) -> Array:
    """Each element's position within its run of equal keys (keys sorted by run)."""
    if not len(keys):
        return np.zeros(0, np.int64)
    return rank_of_runs(np.append(True, keys[1:] != keys[:-1]))


def rank_of_runs(run: Array) -> Array:
    """Each element's position within its run (`run`: True where a run starts)."""
    start = np.flatnonzero(run)
    position = np.arange(len(run))
    return position - np.repeat(start, np.diff(np.append(start, len(run))))


def scan(values: Array, rank: Array, op: Any) -> Array:
    """Inclusive scan of `op` within runs (`rank`: position in the run), in log2(longest run)
    vectorised steps; each element combines only elements of its own run."""
    out = values.copy()
    shift = 1
    while True:
        at = np.flatnonzero(rank >= shift)
        if not len(at):
            return out
        out[at] = op(out[at], out[at - shift])
        shift *= 2


def local_days(ts: Array, tz: str) -> Array:
    """`local_day` of each time: the UTC offset is looked up once per hour of the data (per
    event within an hour where the offset changes)."""
    if tz == "UTC":
        return ts // US_PER_DAY
    hours, inverse = np.unique(ts // US_PER_HOUR, return_inverse=True)
    offsets = np.empty(len(hours), np.int64)
    mixed = np.zeros(len(hours), bool)
    for j, hour in enumerate(hours.tolist()):
        start = utc_offset_us(hour * US_PER_HOUR, tz)
        offsets[j] = start
        mixed[j] = start != utc_offset_us(hour * US_PER_HOUR + US_PER_HOUR - 1, tz)
    days = (ts + offsets[inverse]) // US_PER_DAY
    for at in np.flatnonzero(mixed[inverse]).tolist():
        days[at] = local_day(int(ts[at]), tz)
    return days


class EventColumns:
    """The events of a batch as columns, and each lead's events in arrival order."""

    def __init__(self, book: Book, events: Sequence[Event]):
        self.events = events
        self.n = n = len(events)
        index, self.lead = encode_strings(list(map(attrgetter("lead_id"), events)))
        self.ts = np.fromiter(map(attrgetter("timestamp"), events), np.int64, n)
        signatures, self.sig = encode(list(map(attrgetter("type", "event", "path"), events)))
        self.signatures: list[tuple[str, str | None, str | None]] = signatures
        known, new = book.leads.get, book.lead
        self.lead_states: list[LeadState] = [known(lead_id) or new(lead_id) for lead_id in index]
        self.leads = len(index)
        latest = np.array([NONE if s.latest is None else s.latest for s in self.lead_states],
                          np.int64)
        # Events by lead, in arrival order: `order`; `rank`: the place in the lead's run.
        self.order = np.argsort(self.lead, kind="stable")
        sorted_lead = self.lead[self.order]
        self.rank = run_rank(sorted_lead)
        # The read time of each event: the lead's latest time so far (as `fold_one`).
        w = np.maximum(self.ts[self.order], np.where(self.rank == 0, latest[sorted_lead], NONE))
        w = scan(w, self.rank, np.maximum)
        self.when = np.empty(n, np.int64)
        self.when[self.order] = w
        last = np.flatnonzero(np.append(sorted_lead[1:] != sorted_lead[:-1], True))
        self.top = np.empty(self.leads, np.int64)        # the lead's latest time after the batch
        self.top[sorted_lead[last]] = w[last]
        first = np.flatnonzero(self.rank == 0)
        self.first_when = np.empty(self.leads, np.int64)  # its read time at its first event
        self.first_when[sorted_lead[first]] = w[first]
