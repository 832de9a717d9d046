"""The batch runners: a model's plans (`engine.sql`) run over every lead at once.

    inputs    events, leads and accounts as canonical DuckDB tables; `as_of`
    schema    the tables every runner returns (scores, interests, accounts, lead links)
    duckdb    `score_many`, `score_rules` (the default engine)
    spark     the same plans on Apache Spark, accounts included
    accounts / links    account scores; each lead's account
    rfm       recency, frequency, monetary value and tenure, stand-alone
    state/    `--state`: a saved per-lead state, so a daily run reads only new files
"""

from leadscore.engine.batch.duckdb import connect, score_many, score_rules

__all__ = ["connect", "score_many", "score_rules"]
