"""peewee models of the newest schema (see `schema.py` for the versioned SQL).

Tables are created only by migrations, never by `create_tables`, so models and the
frozen migration SQL must agree; `tests/test_store.py` checks that they do.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping

import numpy as np
from peewee import (
    BlobField,
    BooleanField,
    CompositeKey,
    DatabaseProxy,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from daemon.store.records import NOT_COLUMNS, StemRecord, column_name

database = DatabaseProxy()

#: Journal states still to settle; the terminal ones are stored, duplicate, quarantined and
#: skipped.
PENDING_STATES = ("discovered", "analysed")


class BaseModel(Model):
    class Meta:
        database = database


class Kit(BaseModel):
    """One dropped kit: a folder, a zip or a loose file. `status`: ingesting, complete,
    quarantined."""

    name = TextField(unique=True)
    source_kind = TextField()
    status = TextField()
    added_at = FloatField()
    finished_at = FloatField(null=True)
    source_name = TextField(null=True)  # the inbox entry's file or folder name
    revision = IntegerField(default=0)  # bumped by triggers when its stems change (schema v10)


class Stem(BaseModel):
    """One committed stem. `stored_path` is relative to the library folder.

    The analysis columns are not listed here: `_add_record_columns` adds one field per
    `StemRecord` field, so a new analysis field is declared once, in the record.
    """

    kit = ForeignKeyField(Kit, backref="stems", on_delete="CASCADE")
    stored_path = TextField(unique=True)
    added_at = FloatField()


def _add_record_columns(model: type[Model], record: type) -> None:
    """Give `model` a field for each column of the dataclass `record`, typed from its
    annotations: ``float``, ``int``, ``bool``, ``str``, JSON text for tuples and mappings, a
    blob for arrays; ``X | None`` is nullable."""
    hints = typing.get_type_hints(record)
    for item in dataclasses.fields(record):
        if item.name in NOT_COLUMNS:
            continue
        options = typing.get_args(hints[item.name])
        nullable = type(None) in options
        kind = next((t for t in options if t is not type(None)), hints[item.name])
        field_type = _FIELD_TYPES[typing.get_origin(kind) or kind]
        model._meta.add_field(column_name(item.name), field_type(null=nullable))


_FIELD_TYPES = {float: FloatField, int: IntegerField, bool: BooleanField, str: TextField,
                tuple: TextField, Mapping: TextField, np.ndarray: BlobField}
_add_record_columns(Stem, StemRecord)


class IngestItem(BaseModel):
    """The resume journal: one row per (kit, file), every state change committed."""

    kit = ForeignKeyField(Kit, backref="items", on_delete="CASCADE")
    rel_path = TextField()
    state = TextField(index=True)
    reason = TextField(default="")
    content_hash = TextField(null=True)
    stem = ForeignKeyField(Stem, null=True, on_delete="SET NULL")
    attempts = IntegerField(default=0)
    updated_at = FloatField()
    analysis = TextField(null=True)  # JSON of the analysis, kept between analysed and stored

    class Meta:
        indexes = ((("kit", "rel_path"), True),)


class Render(BaseModel):
    """One finished render, for status and provenance."""

    prompt = TextField()
    wav_path = TextField()
    seed = IntegerField()
    lufs = FloatField(null=True)
    true_peak_db = FloatField(null=True)
    duration = FloatField(null=True)
    created_at = FloatField()


class KitProfileRow(BaseModel):
    """The profile of one kit, as JSON (`daemon.kits.profile` reads and writes it), with a
    stamp of the rules and stem labels it was computed from (`daemon.kits.refresh`)."""

    kit = ForeignKeyField(Kit, primary_key=True, backref="profile", on_delete="CASCADE")
    rules_hash = TextField()
    profile = TextField()
    computed_at = FloatField()

    class Meta:
        table_name = "kitprofile"


class Claim(BaseModel):
    """Who holds an item of a cluster lane, until when, and what of it was finished (schema
    v7; `daemon.store.cluster` reads and writes it)."""

    lane = TextField()  # "ingest" (item: the inbox entry's name) or "render" (the prompt's)
    item = TextField()
    claimed_by = TextField(null=True)  # the worker's name; None while nobody holds it
    claimed_until = FloatField(null=True)  # epoch seconds; expired claims may be taken
    done_mark = TextField(default="")
    updated_at = FloatField()

    class Meta:
        primary_key = CompositeKey("lane", "item")


class WorkerRow(BaseModel):
    """One running `traum worker`, renewed with its heartbeat (schema v7)."""

    name = TextField(primary_key=True)
    host = TextField()
    pid = IntegerField()
    lanes = TextField()  # comma-separated
    schema_version = IntegerField()
    started_at = FloatField()
    heartbeat_at = FloatField()

    class Meta:
        table_name = "worker"


MODELS = (Kit, Stem, IngestItem, Render, KitProfileRow, Claim, WorkerRow)
