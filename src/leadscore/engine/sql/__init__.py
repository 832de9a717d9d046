"""The SQL layer: models compiled to sqlglot expressions — no connection, no I/O.

    build          the builders every query is made of (quoted names, casts, constants folded)
    dialects       DuckDB and Spark as objects: what each spells its own way
    conditions     a model's conditions as predicates (`conditions.holds`, exactly)
    signatures     rules matched once per distinct (type, event, path)
    semantics      what a rule means: match, decay, buckets, cap, and how each rule counts
    program_events / purchases     the program events' and purchases' values
    plan/          the scoring plan as named stages (ev, agg, people, scored, graded, final)
    interest_plan / account_plan   each lead's ranked interests; the accounts and lead links

The runners (`engine.batch`: DuckDB, Spark, `--state`) render and run these; nothing here
imports them.
"""
