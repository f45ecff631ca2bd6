"""peewee models of the newest schema (see `schema.py` for the versioned SQL).

Tables are created only by migrations, never by `create_tables`, so models and the
frozen migration SQL must agree; `tests/test_store.py` checks that they do.
"""

from __future__ import annotations

from peewee import (
    BlobField,
    DatabaseProxy,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

database = DatabaseProxy()

#: Journal states. `discovered` and `analysed` are pending; the others are terminal.
PENDING_STATES = ("discovered", "analysed")
TERMINAL_STATES = ("stored", "duplicate", "quarantined", "skipped")


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


class Stem(BaseModel):
    """One committed stem. `stored_path` is relative to the library folder."""

    kit = ForeignKeyField(Kit, backref="stems", on_delete="CASCADE")
    rel_path = TextField()
    stored_path = TextField(unique=True)
    content_hash = TextField(unique=True)
    category = TextField(index=True)
    category_confidence = FloatField()
    category_source = TextField()
    kind = TextField()
    bpm = FloatField(null=True)
    bpm_confidence = FloatField()
    bpm_source = TextField()
    musical_key = TextField(null=True)
    key_confidence = FloatField()
    key_source = TextField()
    duration = FloatField()
    sample_rate = IntegerField()
    channels = IntegerField()
    lufs = FloatField(null=True)
    peak_db = FloatField()
    rms_db = FloatField()
    crest_db = FloatField()
    tags = TextField()  # JSON list
    embedding = BlobField(null=True)  # float32 bytes
    added_at = FloatField()
    embedding_model = TextField(null=True)
    descriptors = TextField(default="{}")  # JSON object
    features = BlobField(null=True)  # float32 bytes of the classifier feature vector


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


MODELS = (Kit, Stem, IngestItem, Render)
