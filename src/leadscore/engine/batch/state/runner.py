"""Where `--state` runs its SQL: a DuckDB connection or a Spark session, behind the handful of
operations the state needs (make a table of a query, read one value, collect to Arrow, read and
write Parquet, register event files and a leads table). The SQL itself is the same sqlglot
expressions for both (`state.fold`, `state.interests`), rendered for `runner.dialect`.

On Spark a "table" is a temporary view of a cached DataFrame (computed once when made), so that
the chain of folds is not recomputed from the files at every use; a "view" stays lazy. Parquet
is written by Spark as a folder of part files; both runners read a state file or such a
folder, so a state moves between the engines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from leadscore.engine.batch.filters import filter_events
from leadscore.engine.batch.inputs import table_columns
from leadscore.engine.batch.stream import run_stream
from leadscore.engine.sql.dialects import Dialect, DuckDB, Spark
from leadscore.filters import Filters
from leadscore.io import partitions
from leadscore.io.readers import read_leads, read_messages
from leadscore.io.sqltext import literal, quote


class Runner:
    """The operations `--state` needs, on one backend."""

    dialect: Dialect

    def sql(self, query: exp.Query) -> str:
        return query.sql(dialect=self.dialect.NAME)

    def create(self, name: str, query: exp.Query, *, kind: str = "TABLE") -> str:
        """`query` as the temporary table (or, `kind="VIEW"`, view) `name`; returns `name`."""
        raise NotImplementedError

    def scalar(self, query: exp.Query) -> Any:
        [row] = self.arrow(query).to_pylist()
        return next(iter(row.values()))

    def arrow(self, query: exp.Query) -> pa.Table:
        raise NotImplementedError

    def columns(self, name: str) -> dict[str, str]:
        raise NotImplementedError

    def drop(self, name: str) -> None:
        raise NotImplementedError

    def rename(self, old: str, new: str) -> None:
        raise NotImplementedError

    def append(self, target: str, source: str) -> None:
        """The rows of table `source` added to table `target`, columns matched by name."""
        raise NotImplementedError

    def load(self, name: str, path: Path, *, kind: str = "TABLE") -> str:
        """The Parquet file or folder `path` as table (or view) `name`."""
        raise NotImplementedError

    def save(self, name: str, path: Path) -> None:
        """Table `name` written to `path` as Parquet."""
        raise NotImplementedError

    def event_files(self, files: list[str], name: str) -> str:
        """`files` as the canonical events view `name` (bad rows left out)."""
        raise NotImplementedError

    def leads(self, source: str, name: str) -> tuple[str, dict[str, str]]:
        """The leads table `source` as the canonical table `name`, and its column types."""
        raise NotImplementedError

    def register(self, name: str, rows: pa.Table) -> str:
        """The Arrow table `rows` as table `name`."""
        raise NotImplementedError

    def load_parts(self, name: str, paths: list[Path]) -> str:
        """The Parquet files or folders `paths` as one view `name`, columns matched by name
        (NULL where a part lacks one)."""
        raise NotImplementedError

    def message_files(self, files: list[str], name: str) -> tuple[str, int]:
        """Segment JSON `files` as the `messages` relation (`engine.sql.stream`), a table;
        its name and how many bad messages were left out."""
        raise NotImplementedError

    def kept(self, events: str, leads: tuple[str, dict[str, str]] | None, filters: Filters
             ) -> tuple[str, dict[str, int]]:
        """A view of the canonical events `events` without those the `filters` catch (`leads`:
        the leads table and its columns, for the filters on leads), and how many each caught;
        no warning (the state counts across runs)."""
        raise NotImplementedError

    def stream(self, messages: str, as_of: int, base_leads: tuple[str, dict[str, str]] | None
               ) -> Resolved:
        """The stream stage over table `messages` as of `as_of`: its identities, leads and
        accounts (`base_leads`: a leads table beside the stream, its base)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Resolved:
    """What the stream stage made: tables of identities (ident → lead_id), leads, accounts."""

    ids: str
    leads: str
    leads_columns: dict[str, str]
    accounts: str


class DuckDBRunner(Runner):
    dialect = DuckDB()

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def create(self, name: str, query: exp.Query, *, kind: str = "TABLE") -> str:
        self.con.sql(f"CREATE OR REPLACE TEMP {kind} {quote(name)} AS {self.sql(query)}")
        return name

    def arrow(self, query: exp.Query) -> pa.Table:
        return self.con.sql(self.sql(query)).to_arrow_table()

    def columns(self, name: str) -> dict[str, str]:
        return table_columns(self.con, name)

    def drop(self, name: str) -> None:
        self.con.sql(f"DROP TABLE IF EXISTS {quote(name)}")

    def rename(self, old: str, new: str) -> None:
        self.con.sql(f"ALTER TABLE {quote(old)} RENAME TO {quote(new)}")

    def append(self, target: str, source: str) -> None:
        self.con.sql(f"INSERT INTO {quote(target)} BY NAME SELECT * FROM {quote(source)}")

    def load(self, name: str, path: Path, *, kind: str = "TABLE") -> str:
        where = str(path / "*.parquet") if path.is_dir() else str(path)
        self.con.sql(f"CREATE OR REPLACE TEMP {kind} {quote(name)} AS "
                     f"SELECT * FROM read_parquet({literal(where)})")
        return name

    def save(self, name: str, path: Path) -> None:
        self.con.sql(f"COPY {quote(name)} TO {literal(str(path))} (FORMAT parquet)")

    def event_files(self, files: list[str], name: str) -> str:
        return partitions.read_event_files(files, self.con, name)

    def leads(self, source: str, name: str) -> tuple[str, dict[str, str]]:
        read_leads(source, self.con, name=name)
        return name, table_columns(self.con, name)

    def register(self, name: str, rows: pa.Table) -> str:
        self.con.register(name + "__arrow", rows)
        self.con.sql(f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS SELECT * FROM "
                     f"{quote(name + '__arrow')}")
        self.con.unregister(name + "__arrow")
        return name

    def load_parts(self, name: str, paths: list[Path]) -> str:
        listed = ", ".join(literal(str(p / "*.parquet") if p.is_dir() else str(p))
                           for p in paths)
        self.con.sql(f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS SELECT * FROM "
                     f"read_parquet([{listed}], union_by_name = true)")
        return name

    def message_files(self, files: list[str], name: str) -> tuple[str, int]:
        return name, read_messages(files, self.con, name=name).rejected

    def kept(self, events: str, leads: tuple[str, dict[str, str]] | None, filters: Filters
             ) -> tuple[str, dict[str, int]]:
        return filter_events(self.con, events, self.columns(events),
                             leads[0] if leads else None, leads[1] if leads else None,
                             filters, warn=False)

    def stream(self, messages: str, as_of: int, base_leads: tuple[str, dict[str, str]] | None
               ) -> Resolved:
        made = run_stream(self.con, messages, as_of,
                          base_leads=base_leads[0] if base_leads else None)
        return Resolved(made.ids, made.leads, made.leads_columns, made.accounts)


class SparkRunner(Runner):
    """`--state` on a SparkSession (its `engine.batch.spark.settings` in force)."""

    dialect = Spark()

    def __init__(self, spark: Any):
        self.spark = spark
        self.frames: dict[str, Any] = {}     # the cached frames behind the "tables"

    def _register(self, name: str, frame: Any, kind: str) -> str:
        before = self.frames.pop(name, None)
        if kind == "TABLE":
            frame = frame.cache()
            frame.count()         # computed now, once
            self.frames[name] = frame
        frame.createOrReplaceTempView(name)
        if before is not None:    # replaced: a later table no longer needs it cached
            before.unpersist()
        return name

    def create(self, name: str, query: exp.Query, *, kind: str = "TABLE") -> str:
        return self._register(name, self.spark.sql(self.sql(query)), kind)

    def arrow(self, query: exp.Query) -> pa.Table:
        return self.spark.sql(self.sql(query)).toArrow()

    def columns(self, name: str) -> dict[str, str]:
        return {f.name: f.dataType.simpleString().upper()
                for f in self.spark.table(quote(name, "spark")).schema.fields}

    def drop(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)
        frame = self.frames.pop(name, None)
        if frame is not None:
            frame.unpersist()

    def rename(self, old: str, new: str) -> None:
        frame = self.frames.pop(old, None)
        self.spark.table(quote(old, "spark")).createOrReplaceTempView(new)
        if frame is not None:
            self.frames[new] = frame
        self.spark.catalog.dropTempView(old)

    def append(self, target: str, source: str) -> None:
        both = self.spark.table(quote(target, "spark")).unionByName(
            self.spark.table(quote(source, "spark")), allowMissingColumns=True)
        self._register(target, both, "TABLE")

    def load(self, name: str, path: Path, *, kind: str = "TABLE") -> str:
        # Spark's cache is keyed by plan: a frame an earlier run in this session cached from
        # the same path (the state before it was rewritten) would be served again as-is.
        self.spark.catalog.refreshByPath(str(path))
        return self._register(name, self.spark.read.parquet(str(path)), kind)

    def save(self, name: str, path: Path) -> None:
        self.spark.table(quote(name, "spark")).write.mode("overwrite").parquet(str(path))

    def event_files(self, files: list[str], name: str) -> str:
        from leadscore.engine.batch.spark import register_files

        return register_files(self.spark, files, name)

    def leads(self, source: str, name: str) -> tuple[str, dict[str, str]]:
        from leadscore.engine.batch.spark import register

        view, columns, _ = register(self.spark, source, "leads")
        return view, columns

    def register(self, name: str, rows: pa.Table) -> str:
        return self._register(name, self.spark.createDataFrame(rows), "TABLE")

    def load_parts(self, name: str, paths: list[Path]) -> str:
        for path in paths:        # see `load`: a part rewritten under the same path
            self.spark.catalog.refreshByPath(str(path))
        frame = self.spark.read.option("mergeSchema", "true").parquet(*map(str, paths))
        return self._register(name, frame, "VIEW")

    def message_files(self, files: list[str], name: str) -> tuple[str, int]:
        from leadscore.engine.batch.spark_stream import read_messages as read_on_spark

        found = read_on_spark(self.spark, files)
        return self._register(name, self.spark.table(quote(found.view, "spark")), "TABLE"), \
            found.rejected

    def kept(self, events: str, leads: tuple[str, dict[str, str]] | None, filters: Filters
             ) -> tuple[str, dict[str, int]]:
        from leadscore.engine.batch.spark import Inputs, filtered_view

        return filtered_view(self.spark, Inputs(events, self.columns(events),
                                                leads[0] if leads else None,
                                                leads[1] if leads else None), filters)

    def stream(self, messages: str, as_of: int, base_leads: tuple[str, dict[str, str]] | None
               ) -> Resolved:
        from leadscore.engine.batch.spark_stream import Messages
        from leadscore.engine.batch.spark_stream import run_stream as on_spark

        made = on_spark(self.spark, Messages(messages, self.columns(messages), 0), as_of,
                        base_leads=base_leads)
        return Resolved(made.ids, made.leads, made.leads_columns, made.accounts)


def runner_for(con: Any) -> Runner:
    """The runner of a DuckDB connection, a SparkSession, or a Runner itself."""
    if isinstance(con, Runner):
        return con
    if hasattr(con, "sparkContext"):
        return SparkRunner(con)
    return DuckDBRunner(con)

