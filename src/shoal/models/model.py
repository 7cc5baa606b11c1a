"""How a model is declared: a SQL SELECT over lake tables, a key, and what makes it incremental."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shoal.errors import ConfigError, NotFoundError


@dataclass(frozen=True)
class SliceInputs:
    """What a model's ``incremental_arrow`` function computes the touched slices' rows from: the
    relations ``incremental_sql`` reads, as Arrow tables, and a way to query the rest."""

    #: the touched ``incremental_by`` values (``__shoal_touched``, with ``__shoal_from``)
    touched: pa.Table
    #: the single upstream's change-feed rows (``__shoal_changes``), None with several upstreams
    changes: pa.Table | None
    #: the model's current rows in scope (``__shoal_old``)
    old: pa.Table
    #: the model's table schema (what the rows are cast to)
    schema: pa.Schema
    #: runs a query in the refresh's connection, where the relations above are registered
    query: Callable[[str], pa.Table]


@dataclass(frozen=True)
class ScopeInputs:
    """What a model's ``restate_scope`` function decides from (ADR 0055): the slices whose rows in
    scope a refresh would read, and what the runner knows of them without reading them."""

    #: the candidate slices: the ``incremental_by`` columns and ``__shoal_from``, as in
    #: ``__shoal_touched``, plus one column per ``scope_lows`` column, of the same name, holding
    #: the least value of that column among the slice's rows in the table (NULL: no non-NULL one)
    candidates: pa.Table
    #: the single upstream's change-feed rows that fall in a candidate slice (with ``dedupe_by``,
    #: less the re-deliveries the runner recognised); rows of other slices are left out
    changes: pa.Table
    #: runs a query in the refresh's connection (state models are current)
    query: Callable[[str], pa.Table]


class Model(BaseModel):
    """An incremental SQL model.

    ``sql`` defines the whole table. ``incremental_by`` names columns that exist both in the
    upstream tables' changed rows and in the model's output: a refresh recomputes only the
    values of those columns that new upstream rows touched, so the SQL must be correct for
    any subset of them (group by them, or by something finer).

    ``restate_from`` (optional) names an ordered column, also in both, for models where a change
    only affects rows at or after it within its slice (running totals over time, e.g. monthly
    caps): a refresh then recomputes each touched slice only from the smallest changed value on.

    ``incremental_sql`` (optional) replaces ``SELECT * FROM (sql) WHERE <in touched slices>`` on
    incremental refreshes, for models that can do less work than filtering the full result: it
    may read ``__shoal_touched`` (the touched ``incremental_by`` values, plus ``__shoal_from`` with
    ``restate_from``; NULL means the whole slice) and the model's own table, and must return
    exactly the rows the full ``sql`` has in that scope. It may also read ``__shoal_old`` (the
    model's current rows in that scope) and, with a single upstream, ``__shoal_changes`` (the
    upstream's change-feed rows, with ``_change_type``).

    ``incremental_arrow`` (optional, with ``incremental_sql``): a function computing the same rows
    as ``incremental_sql`` in Arrow and numpy, for models refreshed so often that a DuckDB
    statement's fixed cost dominates (:class:`SliceInputs`; a ``module:function`` string in YAML).
    It returns None for any input it does not compute exactly as the SQL would (then the SQL runs):
    the SQL stays the definition, and the function an implementation of it that tests compare.

    ``state_models`` (optional) names models downstream of this one that ``incremental_sql`` reads
    as per-slice state (e.g. month-to-date totals, so a refresh need not re-sum the month): the
    runner brings each up to this model's current version before an incremental refresh, so the
    state always matches the rows it summarises, also after a crash between the two commits.

    ``additive_sql`` (optional) maintains a model of sums without recomputing groups: it runs over
    ``__shoal_delta`` (the single upstream's change-feed rows, with ``__shoal_sign`` = +1 for
    inserted rows and post-images, -1 for deleted rows and pre-images) and returns, per
    ``unique_key``, the signed change of each ``additive`` column (other columns must depend on
    the key alone). The runner adds it to the current rows; a row whose ``additive_count`` (the
    additive column counting upstream rows) reaches 0 is deleted. The work is proportional to
    what changed, not to the size of the groups.

    ``dedupe_by`` (optional, with ``restate_from``) names a column of both the upstream's rows and
    the model's that identifies an upstream row (an event id), where the model ignores an upstream
    row whose id its table already holds (a re-delivery: its SQL keeps the row there). The runner
    keeps the ids of the table's rows hashed in memory and drops such change rows before the
    refresh, instead of reading their slices to find them (ADR 0055).

    ``restate_scope`` (optional, with ``restate_from``): a function that, from what the runner
    keeps in memory (:class:`ScopeInputs`: each candidate slice's least ``scope_lows`` values) and
    the model's state, returns the candidate slices whose rows in scope must still be read, or
    None for all of them. For every slice it leaves out it vouches that the new upstream rows
    change none of the slice's rows in the table and repeat none of their keys: the refresh then
    computes and writes only the new rows, as for a slice touched past all its rows (ADR 0055).
    A function that leaves out a slice it should not makes the table wrong; tests compare with a
    rebuild.

    ``commit_every_s`` (optional, additive models): a runner that keeps the model fresh
    continuously (a watcher, or an ingest worker refreshing in its commits) holds the model's
    changes in memory, where the models it is state for read them at once, and commits them to
    its table at most this often (and when it stops). Readers of the table see it up to that much
    behind; a crash loses only the held changes, which the next refresh takes again from the
    upstream's change feed (ADR 0038).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    sql: str
    unique_key: tuple[str, ...]
    incremental_by: tuple[str, ...] = ()
    restate_from: str | None = None
    incremental_sql: str | None = None
    incremental_arrow: Callable[[SliceInputs], pa.Table | None] | None = None
    restate_scope: Callable[[ScopeInputs], pa.Table | None] | None = None
    scope_lows: tuple[str, ...] = ()
    dedupe_by: str | None = None
    state_models: tuple[str, ...] = ()
    additive_sql: str | None = None
    additive: tuple[str, ...] = ()
    additive_count: str | None = None
    commit_every_s: float | None = Field(None, gt=0)
    upstream: tuple[str, ...] = ()
    description: str = ""
    owner: str = ""
    partition_by: tuple[str, ...] = ()

    def __init__(self, /, **data: Any) -> None:
        listed = ("unique_key", "incremental_by", "upstream", "partition_by", "state_models", "additive")
        for key in (*listed, "scope_lows"):
            value = data.get(key)
            if isinstance(value, str):
                data[key] = (value,)
        super().__init__(**data)

    @field_validator("incremental_arrow", "restate_scope", mode="before")
    @classmethod
    def _import_function(cls, v: Any) -> Any:
        return import_object(v) if isinstance(v, str) else v

    @field_validator("unique_key")
    @classmethod
    def _key_not_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("unique_key needs at least one column")
        return v

    @model_validator(mode="after")
    def _options_fit_together(self) -> Model:
        if self.restate_from and not self.incremental_by:
            raise ValueError("restate_from needs incremental_by (it orders rows within each slice)")
        if self.incremental_sql and not self.incremental_by:
            raise ValueError("incremental_sql needs incremental_by (it computes the touched slices)")
        if self.incremental_arrow and not self.incremental_sql:
            raise ValueError("incremental_arrow needs incremental_sql (the definition it implements)")
        if self.restate_scope and not self.restate_from:
            raise ValueError("restate_scope needs restate_from (it narrows what a restate reads)")
        if self.scope_lows and not self.restate_scope:
            raise ValueError("scope_lows needs restate_scope (the function that reads them)")
        if self.dedupe_by and not self.restate_from:
            raise ValueError("dedupe_by needs restate_from (its ids are kept with the restate marks)")
        if self.state_models and not self.incremental_sql:
            raise ValueError("state_models needs incremental_sql (the query that reads them)")
        if self.additive_sql:
            if len(self.upstream) != 1:
                raise ValueError("additive_sql needs exactly one upstream (whose changes it sums)")
            if self.incremental_by:
                raise ValueError("additive_sql and incremental_by exclude each other")
            if not self.additive_count or self.additive_count not in self.additive:
                raise ValueError("additive_sql needs additive_count, one of the additive columns")
            overlap = set(self.additive) & set(self.unique_key)
            if overlap:
                raise ValueError(f"additive column(s) {', '.join(sorted(overlap))} are in unique_key")
        elif self.additive or self.additive_count:
            raise ValueError("additive and additive_count need additive_sql")
        if self.commit_every_s is not None and not self.additive_sql:
            raise ValueError("commit_every_s needs additive_sql (only sums are held in memory)")
        return self

    @property
    def sql_hash(self) -> int:
        """A stable id of the definition: a change forces a full rebuild."""
        parts = [self.sql, *self.unique_key, *self.incremental_by, *self.partition_by]
        if self.restate_from:  # only when set: existing models keep their hash
            parts.append(f"restate_from={self.restate_from}")
        if self.incremental_sql:
            parts.append(self.incremental_sql)
        if self.additive_sql:
            parts += [self.additive_sql, *self.additive, f"additive_count={self.additive_count}"]
        text = "\x1f".join(parts)
        return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


class _ModelFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    models: list[dict[str, Any]] = Field(default_factory=list)


def _models_from_yaml(path: Path) -> list[Model]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read model file: {exc}") from exc
    items = raw.get("models", [raw]) if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expected a model mapping or a list under 'models'")
    out: list[Model] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: models[{i}]: expected a mapping")
        spec = dict(item)
        if "sql_file" in spec:
            sql_path = (path.parent / str(spec.pop("sql_file"))).resolve()
            try:
                spec["sql"] = sql_path.read_text()
            except OSError as exc:
                raise ConfigError(f"{path}: models[{i}].sql_file: cannot read {sql_path}") from exc
        try:
            out.append(Model(**spec))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{path}: models[{i}].{loc}: {first['msg']}") from exc
    return out


def import_object(spec: str) -> Any:
    """``package.module:attr`` or ``package.module`` → the object."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    return getattr(module, attr) if attr else module


def select_models(models: Sequence[Model], names: Sequence[str] | None) -> list[Model]:
    """The models named (all when ``names`` is empty) plus the state models they read.

    A model's state models are refreshed with it (the runner keeps them at its version), so a
    watcher of a subset owns them too. Unknown names are one error naming them all.
    """
    if not names:
        return list(models)
    chosen = [m for m in models if m.name in names]
    unknown = sorted(set(names) - {m.name for m in chosen})
    if unknown:
        raise NotFoundError(f"no model named {', '.join(unknown)}")
    state = {s for m in chosen for s in m.state_models}
    return chosen + [m for m in models if m.name in state and m not in chosen]


def load_models(specs: Iterable[str], base_dir: Path) -> list[Model]:
    """Resolve ``models:`` entries: YAML files (globs allowed) or python modules with ``models()``."""
    found: list[Model] = []
    for spec in specs:
        if spec.endswith((".yaml", ".yml")):
            paths = sorted(base_dir.glob(spec)) if any(c in spec for c in "*?[") else [base_dir / spec]
            for p in paths:
                if not p.is_file():
                    raise ConfigError(f"models: {p} does not exist")
                found.extend(_models_from_yaml(p))
            continue
        obj = import_object(spec)
        factory = getattr(obj, "models", None) or getattr(obj, "MODELS", None)
        if factory is None:
            raise ConfigError(f"models: module {spec!r} has no models() or MODELS")
        items: Sequence[Model] = factory() if callable(factory) else factory
        found.extend(items)
    names = [m.name for m in found]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"models: declared twice: {', '.join(sorted(dupes))}")
    return found
