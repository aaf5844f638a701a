"""Copy every table of an SQLite Loft into an empty, migrated PostgreSQL database (`flask db copy-to`).

Each model's rows go through peewee both ways: read with the source's field conversions (text dates
become datetimes, 0/1 booleans, JSON text documents) and written with the target's (timestamp,
boolean, jsonb). Tables are copied parents first (foreign keys are checked row by row on PostgreSQL),
each in primary-key order so a row that points at an older row of its own table (a resend's parent
campaign) comes after it. The source is streamed through one cursor and written with COPY in batches, so a
table of a million rows never sits in memory. Everything is written in one transaction: a failure, or
counts that do not match at the end, leave the target as empty as it was. Ids are kept, and each
table's id counter is set past the highest id the source ever handed out (they are in links of mail
already sent).
"""
import itertools
from dataclasses import dataclass

import peewee
from peewee import SqliteDatabase
from peewee import fn
from playhouse.migrations import Runner

from app import models
from app.db import BaseModel
from app.db import copy_rows
from app.db import id_high_water
from app.db import raise_id_counters
from app.errors import Problem

MIGRATION_HISTORY = "schema_migration"
ROWS_PER_BATCH = 10_000
# Rows the migrations themselves write into a fresh database; the copy replaces them with the source's.
SEEDED_BY_MIGRATIONS = (models.HealthProbe,)


class CopyError(Problem):
    """The copy was refused or failed; the message says why and what to do."""


@dataclass
class TableCount:
    table: str
    source: int
    target: int

    @property
    def matches(self):
        return self.source == self.target


def every_model():
    """Every model of app/models/, parents before the tables that point at them."""
    found = [value for value in vars(models).values()
             if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel]
    return peewee.sort_models(found)


def check_copy(source, target, migrations_dir):
    """Refuse, in words, a copy that could not be faithful: the source is not SQLite or not fully
    migrated, the target is not PostgreSQL, not at the same migration, holds data, or either has a
    table Loft has no model for."""
    if not isinstance(source, SqliteDatabase):
        raise CopyError("This Loft does not run on SQLite: copy-to moves an SQLite install to PostgreSQL. "
                        "Copy one PostgreSQL database into another with pg_dump and pg_restore.")
    if not isinstance(target, peewee.PostgresqlDatabase):
        raise CopyError("The target must be a PostgreSQL database (postgresql://user:password@host:5432/name).")
    try:
        target.connect(reuse_if_open=True)
    except peewee.OperationalError as exc:
        raise CopyError(f"Cannot connect to the target: {str(exc).strip()}") from exc
    source_runner = Runner(source, migrations_dir)
    pending = [migration.name for migration in source_runner.status() if not migration.applied]
    if pending:
        raise CopyError(f"This database has {len(pending)} pending migration(s) (first {pending[0]}): "
                        "run `flask db upgrade` first.")
    wanted = set(source_runner.applied())
    try:
        reached = set(Runner(target, migrations_dir).applied())
    except peewee.DatabaseError as exc:
        raise CopyError(f"Cannot read the target's migrations: {exc}".strip()) from exc
    if reached != wanted:
        latest = max(wanted) if wanted else "none"
        where = f"at {max(reached)}" if reached else "not migrated"
        raise CopyError(f"The target is {where}; this database is at {latest}. Migrate the empty target "
                        "first: LOFT_DATABASE_URL=<target url> flask db upgrade (with the same Loft).")
    known = {model._meta.table_name for model in every_model()} | {MIGRATION_HISTORY}
    for name, database in (("this database", source), ("the target", target)):
        unknown = sorted(t for t in database.get_tables() if t not in known and not t.startswith("sqlite_"))
        if unknown:
            raise CopyError(f"{name.capitalize()} has table(s) this Loft has no model for: {', '.join(unknown)}. "
                            "Nothing was copied; use the Loft version that made them.")
    for model in every_model():
        columns = {field.column_name for field in model._meta.sorted_fields}
        for name, database in (("this database", source), ("the target", target)):
            found = {column.name for column in database.get_columns(model._meta.table_name)}
            if found != columns:
                raise CopyError(f"Table {model._meta.table_name} in {name} has columns "
                                f"{', '.join(sorted(found ^ columns))} that differ from this Loft's model.")
    filled = [model._meta.table_name for model in every_model()
              if model not in SEEDED_BY_MIGRATIONS and model.select().limit(1).exists(target)]
    if filled:
        raise CopyError(f"The target is not empty: {', '.join(filled[:5])}{' ...' if len(filled) > 5 else ''} "
                        "hold rows. Copy into a new, empty database (createdb, then flask db upgrade on it).")


def copy_database(source, target, migrations_dir, progress=None):
    """Copy every table from `source` (SQLite) into `target` (an empty PostgreSQL at the same migration);
    returns a TableCount per table, counted on both sides after the copy. `progress(table, rows)` is
    called after each batch with the rows of that table copied so far."""
    check_copy(source, target, migrations_dir)
    counts = []
    with target.atomic():
        for model in SEEDED_BY_MIGRATIONS:
            model.delete().execute(target)
        for model in every_model():
            copy_table(model, source, target, progress)
        raise_id_counters(target, id_high_water(source))
        for model in every_model():
            counts.append(TableCount(model._meta.table_name, model.select().count(source),
                                     model.select().count(target)))
        wrong = [count.table for count in counts if not count.matches]
        if wrong:
            raise CopyError(f"The row counts differ after the copy in {', '.join(wrong)}: nothing was kept in "
                            "the target. Is a Loft process still writing to this database? Stop it and retry.")
        for model in every_model():
            if _highest_id(model, source) != _highest_id(model, target):
                raise CopyError(f"The ids of {model._meta.table_name} differ after the copy: nothing was kept "
                                "in the target.")
    return counts


def copy_table(model, source, target, progress=None):
    """Stream one table's rows from source into target with COPY, in batches (for the progress line
    and the error message); returns how many were copied."""
    fields = model._meta.sorted_fields
    keys = [model._meta.primary_key] if not model._meta.composite_key else [
        model._meta.fields[name] for name in model._meta.primary_key.field_names]
    rows = model.select(*fields).order_by(*keys).tuples().iterator(source)
    # Read with the source's conversions, written as the fields store them (JSON as its text, which
    # COPY hands to the jsonb column as is).
    to_column = [field.db_value for field in fields]
    columns = [field.column_name for field in fields]
    copied = 0
    while True:
        batch = list(itertools.islice(rows, ROWS_PER_BATCH))
        if not batch:
            return copied
        try:
            with target.atomic():
                copy_rows(target, model._meta.table_name, columns,
                          (tuple(convert(value) for convert, value in zip(to_column, row)) for row in batch))
        except peewee.DatabaseError as exc:
            raise CopyError(f"Copying {model._meta.table_name} failed after {copied:,} rows "
                            f"({type(exc).__name__}: {str(exc).strip()}); nothing was kept in the target.") from exc
        copied += len(batch)
        if progress:
            progress(model._meta.table_name, copied)


def _highest_id(model, database):
    key = model._meta.primary_key
    if model._meta.composite_key or not isinstance(key, (peewee.AutoField, peewee.IntegerField)):
        return None
    return model.select(fn.MAX(key)).scalar(database)
