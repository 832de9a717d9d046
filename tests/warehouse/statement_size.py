"""How big a statement is once every CTE reference is replaced by its definition — the plan
Spark's optimiser works on (it inlines each reference of a deterministic CTE), so what decides
whether a compiled statement is analysable in a driver's memory and in reasonable time.

    PYTHONPATH=src python -m tests.warehouse.statement_size

prints the examples' `--layout segment` statement's size and its largest CTEs, inlined.
"""

from __future__ import annotations

from sqlglot import exp


def inlined_size(node: exp.Expr, sizes: dict[str, int] | None = None,
                 seen: dict[str, int] | None = None) -> int:
    """The number of sqlglot nodes of `node` with every reference to a CTE in scope counted
    as that CTE's own inlined size (`sizes`: the CTEs of the enclosing scopes). `seen`, when
    given, receives each CTE's inlined size by name."""
    scope = dict(sizes or {})
    total = 1
    with_ = node.args.get("with_")
    if isinstance(with_, exp.With):
        total += 1
        for cte in with_.expressions:
            scope[cte.alias] = inlined_size(cte.this, scope, seen)
            if seen is not None:
                seen[cte.alias] = scope[cte.alias]
    if isinstance(node, exp.Table) and not node.args.get("db") and node.name in scope:
        return scope[node.name]
    for key, value in node.args.items():
        if key == "with_":
            continue
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, exp.Expr):
                total += inlined_size(child, scope, seen)
    return total


def examples_statement(dialect: str = "spark") -> exp.Expr:
    """The examples' models over the loader tables they declare, as `compile --layout
    segment` makes it."""
    from leadscore import load_model
    from leadscore.engine.sql.segment_tables import compile_segment_scores, declared_schema
    from leadscore.engine.sql.warehouse import declared_columns
    from tests.warehouse.test_compile import EXAMPLES

    models = [load_model(p) for p in EXAMPLES]
    events, leads = declared_columns(models)
    return compile_segment_scores(models, declared_schema("segment", models, leads, events),
                                  as_of_us=1_780_000_000_000_000, dialect=dialect)


def main() -> None:
    seen: dict[str, int] = {}
    print(f"inlined: {inlined_size(examples_statement(), None, seen):,} nodes")
    for name, size in sorted(seen.items(), key=lambda item: -item[1])[:20]:
        print(f"{size:>12,}  {name}")


if __name__ == "__main__":
    main()
