"""Rules matched once per event signature, not once per event.

Whether an event is named by a rule (its track name, or its page path against the rule's globs)
depends only on the event's (type, event, path): its *signature*. A data set has few of them
(~1,200 in 10M benchmark events), so the batch plan matches every rule against the distinct
signatures and joins the result back to the events as bit masks — one integer column per 62
rules instead of a LIKE per glob and rule per event. A rule's `where` (properties of the event
itself) is still evaluated per event, for the rules that have one.

When every page glob is a test DuckDB runs without a pattern matcher (a literal path, a
prefix `/docs/*`, a suffix or an infix: a LIKE without `_` or ESCAPE, `%` only at its ends), the
masks are computed per event instead, in the scan itself (`inline`): a CASE on the event name
and a prefix test per glob cost less than the pass that finds the distinct signatures and the
join (staging 10M events 3.2 → 2.3 CPU s with model-17's 7 globs); other globs keep the join.

Built as sqlglot expressions like the rest of the plan: `<=>`-style null-safe equality and `&`
render for DuckDB and Spark alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlglot import exp

from leadscore.engine.sql.build import and_, col, or_, text
from leadscore.engine.sql.conditions import like, to_sql
from leadscore.globs import LIKE_ESCAPE, glob_to_like
from leadscore.model.compiled import Matcher

BITS = 62                   # flags per BIGINT mask column (the sign bit left alone)
KEYS = ("type", "event", "path")
# Globs tested per event at most (`inline`); 7 measured, beyond that the join may cost less.
INLINE_GLOBS = 16


def named(matcher: Matcher) -> exp.Expr:
    """SQL for the part of `Matcher.matches` that reads only the signature (no `where`)."""
    kind = col("type")
    if matcher.pages:
        path = col("path")
        globs = or_(*(like(path.copy(), glob_to_like(g)) for g in matcher.pages))
        return and_(exp.EQ(this=kind, expression=text("page")),
                    exp.not_(exp.Is(this=path.copy(), expression=exp.Null())), globs)
    names = sorted(matcher.events)
    event = col("event")
    hit = exp.EQ(this=event, expression=text(names[0])) if len(names) == 1 else \
        exp.In(this=event, expressions=[text(n) for n in names])
    return and_(exp.NEQ(this=kind, expression=text("page")), exp.func("COALESCE", hit, exp.false()))


def _simple(pattern: str) -> bool:
    """Whether DuckDB runs `LIKE pattern` as an equality, prefix, suffix or infix test."""
    return LIKE_ESCAPE not in pattern and "_" not in pattern and "%" not in pattern.strip("%")


def _bits(hits: Sequence[tuple[exp.Expr, int]]) -> exp.Expr:
    """The sum of `bit` over the `(condition, bit)` pairs whose condition holds (0 for none)."""
    total = _bigint(0)
    for hit, bit in hits:
        total = exp.Add(this=total, expression=exp.Case().when(hit, _bigint(bit))
                        .else_(_bigint(0)))
    return total


def _bigint(value: int) -> exp.Expr:
    return exp.cast(exp.Literal.number(value), exp.DataType.Type.BIGINT)


class Signatures:
    """The flags of a set of matchers, each named: bit `i % 62` of mask column `i // 62`."""

    def __init__(self, matchers: Sequence[tuple[str, Matcher]],
                 events_columns: Mapping[str, str]) -> None:
        self.matchers = list(matchers)
        self.columns = events_columns
        self.position = {name: i for i, (name, _) in enumerate(self.matchers)}
        globs = [glob_to_like(g) for _, m in self.matchers for g in m.pages]
        self.inline = len(globs) <= INLINE_GLOBS and all(_simple(g) for g in globs)

    @staticmethod
    def mask_column(number: int) -> str:
        return f"mask{number}"

    @staticmethod
    def where_column(name: str) -> str:
        return f"w_{name}"

    def masks(self) -> int:
        return (len(self.matchers) + BITS - 1) // BITS

    def flag(self, name: str, table: str | None = None, *, inline: bool = False) -> exp.Expr:
        """Whether the staged event matches matcher `name` (mask bit and `where`); `inline`:
        within ev itself, where `where` is not a column yet."""
        position = self.position[name]
        bit = exp.BitwiseAnd(this=col(self.mask_column(position // BITS), table),
                             expression=exp.Literal.number(1 << (position % BITS)))
        hit = exp.NEQ(this=exp.Paren(this=bit), expression=exp.Literal.number(0))
        where = self.matchers[position][1].where
        if where is None:
            return hit
        return and_(hit, to_sql(where, self.columns) if inline
                    else col(self.where_column(name), table))

    def staged(self) -> list[exp.Expr]:
        """ev's columns: the masks (from the joined signatures) and each `where` per event."""
        out: list[exp.Expr] = [exp.alias_(col(self.mask_column(n), "s"), self.mask_column(n),
                                          quoted=True) for n in range(self.masks())]
        for name, matcher in self.matchers:
            if matcher.where is not None:
                out.append(exp.alias_(to_sql(matcher.where, self.columns),
                                      self.where_column(name), quoted=True))
        return out

    def _group(self, number: int) -> list[tuple[str, Matcher]]:
        return self.matchers[number * BITS:(number + 1) * BITS]

    def _bit(self, name: str) -> int:
        return 1 << (self.position[name] % BITS)

    def _inline_mask(self, number: int) -> exp.Expr:
        """Mask column `number` from the event's own columns: per page glob a LIKE, per event
        name one branch of a CASE holding the bits of every rule that names it."""
        pages: list[tuple[exp.Expr, int]] = []
        by_name: dict[str, int] = {}
        for name, matcher in self._group(number):
            if matcher.pages:
                path = col("path")
                pages.append((or_(*(like(path.copy(), glob_to_like(g)) for g in matcher.pages)),
                              self._bit(name)))
                continue        # a page rule names no track event (`named`)
            for event in matcher.events:
                by_name[event] = by_name.get(event, 0) | self._bit(name)
        page_bits = _bits(pages)
        event_bits: exp.Expr = _bigint(0)
        if by_name:
            event_bits = exp.Case(this=col("event"))
            for event, bits in sorted(by_name.items()):
                event_bits = event_bits.when(text(event), _bigint(bits))
            event_bits = event_bits.else_(_bigint(0))
        kind = col("type")
        return exp.Case().when(exp.EQ(this=kind, expression=text("page")), page_bits) \
            .when(exp.NEQ(this=kind.copy(), expression=text("page")), event_bits) \
            .else_(_bigint(0))

    def join(self, query: exp.Select, events: exp.Expr, until: exp.Expr) -> exp.Select:
        """`query` (selecting from `events`) joined to the masks of the distinct signatures of
        the events `until` selects; `inline`: reading `events` with the masks computed per
        event instead (no join)."""
        if self.inline:
            computed = exp.select(exp.Star(), *(
                exp.alias_(self._inline_mask(n), self.mask_column(n), quoted=True)
                for n in range(self.masks()))).from_(events.copy())
            return query.from_(computed.subquery("s", copy=False), copy=False)
        distinct = exp.select(*(col(k) for k in KEYS)).distinct().from_(events.copy()) \
            .where(until.copy())
        masks = [exp.alias_(_bits([(named(matcher), self._bit(name))
                                   for name, matcher in self._group(number)]),
                            self.mask_column(number), quoted=True)
                 for number in range(self.masks())]
        # The signature's own columns are renamed so that the events' type/event/path stay
        # unambiguous in the rest of ev.
        signatures = exp.select(*(exp.alias_(col(k), f"sig_{k}", quoted=True) for k in KEYS),
                                *masks).from_(distinct.subquery("d", copy=False))
        on = and_(*(exp.NullSafeEQ(this=col(k), expression=col(f"sig_{k}", "s"))
                    for k in KEYS))
        return query.join(signatures.subquery("s", copy=False), on=on, join_type="INNER")
