"""Schema versions of stems.db as frozen SQL, applied in order by `migrate`.

Each migration is the exact SQL of its release and never changes once shipped, so a newer
Traum-Engine opens a database written by any older one and brings it forward without loss.
The models in `models.py` describe the newest schema.
"""

from __future__ import annotations

from collections.abc import Callable

from peewee import Database

from daemon.errors import StoreError
from daemon.store import dialect

_V1 = [
    """CREATE TABLE kit (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        source_kind TEXT NOT NULL,
        status TEXT NOT NULL,
        added_at REAL NOT NULL,
        finished_at REAL)""",
    """CREATE TABLE stem (
        id INTEGER PRIMARY KEY,
        kit_id INTEGER NOT NULL REFERENCES kit(id) ON DELETE CASCADE,
        rel_path TEXT NOT NULL,
        stored_path TEXT NOT NULL UNIQUE,
        content_hash TEXT NOT NULL UNIQUE,
        category TEXT NOT NULL,
        category_confidence REAL NOT NULL,
        category_source TEXT NOT NULL,
        kind TEXT NOT NULL,
        bpm REAL,
        bpm_confidence REAL NOT NULL,
        bpm_source TEXT NOT NULL,
        musical_key TEXT,
        key_confidence REAL NOT NULL,
        key_source TEXT NOT NULL,
        duration REAL NOT NULL,
        sample_rate INTEGER NOT NULL,
        channels INTEGER NOT NULL,
        lufs REAL,
        peak_db REAL NOT NULL,
        rms_db REAL NOT NULL,
        crest_db REAL NOT NULL,
        tags TEXT NOT NULL,
        embedding BLOB,
        added_at REAL NOT NULL)""",
    "CREATE INDEX stem_category ON stem(category)",
    "CREATE INDEX stem_kit ON stem(kit_id)",
    """CREATE TABLE ingestitem (
        id INTEGER PRIMARY KEY,
        kit_id INTEGER NOT NULL REFERENCES kit(id) ON DELETE CASCADE,
        rel_path TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        content_hash TEXT,
        stem_id INTEGER REFERENCES stem(id) ON DELETE SET NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        UNIQUE (kit_id, rel_path))""",
    "CREATE INDEX ingestitem_state ON ingestitem(state)",
]

# Version 2: the embedding backend's model name per vector (so switching backends can
# re-embed), the inbox entry a kit came from (so an interrupted kit is resumed under
# the name it was given), the analysis descriptors, the analysis cached in the journal (so a crash
# between analysis and store does not analyse a file twice), and the render log.
_V2 = [
    "ALTER TABLE kit ADD COLUMN source_name TEXT",
    "ALTER TABLE stem ADD COLUMN embedding_model TEXT",
    "ALTER TABLE stem ADD COLUMN descriptors TEXT NOT NULL DEFAULT '{}'",
    "ALTER TABLE ingestitem ADD COLUMN analysis TEXT",
    """CREATE TABLE render (
        id INTEGER PRIMARY KEY,
        prompt TEXT NOT NULL,
        wav_path TEXT NOT NULL,
        seed INTEGER NOT NULL,
        lufs REAL,
        true_peak_db REAL,
        duration REAL,
        created_at REAL NOT NULL)""",
]

# Version 3: the classifier feature vector per stem, so the audio category classifier can
# learn from the user's own named stems without decoding them again.
_V3 = [
    "ALTER TABLE stem ADD COLUMN features BLOB",
]

# Version 4: the version of the analysis code per stem, so a re-analysis can find stems
# analysed by older code (0: analysed before versions were recorded). The analysis cached in
# the journal changed form (the stem's column values), so the few files a crash left
# analysed but not stored under an older release are analysed again.
_V4 = [
    "ALTER TABLE stem ADD COLUMN analysis_version INTEGER NOT NULL DEFAULT 0",
    "UPDATE ingestitem SET state = 'discovered', analysis = NULL WHERE state = 'analysed'",
]

# Version 5: a profile per kit (genre family, tempo, keys, sound; JSON written by
# daemon.kits.profile) with a stamp of the rules and the stem labels it was computed from, so
# a rules change, a correction or a re-analysis is noticed and the profile computed again.
_V5 = [
    """CREATE TABLE kitprofile (
        kit_id INTEGER PRIMARY KEY REFERENCES kit(id) ON DELETE CASCADE,
        rules_hash TEXT NOT NULL,
        profile TEXT NOT NULL,
        computed_at REAL NOT NULL)""",
]

# Version 6: the evidence a kit's tempo and key consensus weighs (the audio pulse, the
# summed chroma), why a tempo or key is uncertain, and whether a key is trusted without
# listening. Keys from names were trusted before; audio keys are checked again by ear until a
# re-analysis (ANALYSIS_VERSION 2) weighs them per kit. Cached analyses lack the new fields:
# those few files are analysed again.
_V6 = [
    "ALTER TABLE stem ADD COLUMN pulse_bpm REAL",
    "ALTER TABLE stem ADD COLUMN pulse_confidence REAL NOT NULL DEFAULT 0",
    "ALTER TABLE stem ADD COLUMN pulse_kicks INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE stem ADD COLUMN chroma BLOB",
    "ALTER TABLE stem ADD COLUMN bpm_reason TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE stem ADD COLUMN key_trusted INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE stem ADD COLUMN key_reason TEXT NOT NULL DEFAULT ''",
    "UPDATE stem SET key_trusted = 1 WHERE key_source = 'filename'",
    "UPDATE ingestitem SET state = 'discovered', analysis = NULL WHERE state = 'analysed'",
]

# Version 7: the cluster's bookkeeping ("Scaling out" in the README; a single machine leaves
# these tables empty). A claim says which worker holds an inbox entry or a prompt, and until
# when: a worker takes it with one atomic UPDATE ... WHERE claimed_by IS NULL OR
# claimed_until < now, renews it with its heartbeat, and the claim of a killed worker expires
# for another to take. `done_mark` is what was last finished (a prompt's text by its mtime,
# or the snapshot of an entry whose ingest failed for good), so a task delivered twice does
# its work once. `worker` lists the running workers for `traum status`.
_V7 = [
    """CREATE TABLE claim (
        lane TEXT NOT NULL,
        item TEXT NOT NULL,
        claimed_by TEXT,
        claimed_until REAL,
        done_mark TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL,
        PRIMARY KEY (lane, item))""",
    "CREATE INDEX claim_holder ON claim(claimed_by)",
    """CREATE TABLE worker (
        name TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        lanes TEXT NOT NULL,
        schema_version INTEGER NOT NULL,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL)""",
]

# Version 8: indexes for a library of a million stems (bench/bench_store.py): a page of
# `traum stems --category` by keyset (category, id), a track's candidates by kit and
# category, and the newest quarantined files by (state, updated_at). Each replaces the
# one-column index it extends.
_V8 = [
    "CREATE INDEX stem_category_id ON stem(category, id)",
    "DROP INDEX stem_category",
    "CREATE INDEX stem_kit_category ON stem(kit_id, category)",
    "DROP INDEX stem_kit",
    "CREATE INDEX ingestitem_state_updated ON ingestitem(state, updated_at)",
    "DROP INDEX ingestitem_state",
]

# Version 9: exact counts for `traum status` kept by the database itself, since counting a
# million rows by group takes most of a second: stems per category, journal items per state,
# kits per status and renders, one `stat_count` row each (rows that reach 0 stay). Row
# triggers keep them on every insert, delete (foreign-key cascades included: both databases
# fire the child rows' triggers; SQLite's REPLACE would not, so the queries upsert) and
# change of the counted column, in the writer's transaction. A change moves one count to
# another in one statement, the two rows in name order, so two PostgreSQL writers moving
# counts in opposite directions cannot deadlock.
# The triggers come before the counts: on PostgreSQL creating them locks out writers until
# the migration commits, so no row is missed or counted twice.
_V9 = [
    """CREATE TABLE stat_count (
        topic TEXT NOT NULL,
        name TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (topic, name))""",
    """CREATE TRIGGER stem_counted AFTER INSERT ON stem FOR EACH ROW BEGIN
        INSERT INTO stat_count (topic, name, n) VALUES ('stem', NEW.category, 1)
        ON CONFLICT (topic, name) DO UPDATE SET n = stat_count.n + 1;
    END""",
    """CREATE TRIGGER stem_uncounted AFTER DELETE ON stem FOR EACH ROW BEGIN
        UPDATE stat_count SET n = n - 1 WHERE topic = 'stem' AND name = OLD.category;
    END""",
    """CREATE TRIGGER stem_recounted AFTER UPDATE OF category ON stem FOR EACH ROW
    WHEN OLD.category <> NEW.category BEGIN
        INSERT INTO stat_count (topic, name, n)
        SELECT 'stem', counted, delta FROM (SELECT OLD.category AS counted, -1 AS delta
            UNION ALL SELECT NEW.category, 1) AS change WHERE true ORDER BY counted
        ON CONFLICT (topic, name) DO UPDATE SET n = stat_count.n + excluded.n;
    END""",
    """CREATE TRIGGER ingestitem_counted AFTER INSERT ON ingestitem FOR EACH ROW BEGIN
        INSERT INTO stat_count (topic, name, n) VALUES ('journal', NEW.state, 1)
        ON CONFLICT (topic, name) DO UPDATE SET n = stat_count.n + 1;
    END""",
    """CREATE TRIGGER ingestitem_uncounted AFTER DELETE ON ingestitem FOR EACH ROW BEGIN
        UPDATE stat_count SET n = n - 1 WHERE topic = 'journal' AND name = OLD.state;
    END""",
    """CREATE TRIGGER ingestitem_recounted AFTER UPDATE OF state ON ingestitem FOR EACH ROW
    WHEN OLD.state <> NEW.state BEGIN
        INSERT INTO stat_count (topic, name, n)
        SELECT 'journal', counted, delta FROM (SELECT OLD.state AS counted, -1 AS delta
            UNION ALL SELECT NEW.state, 1) AS change WHERE true ORDER BY counted
        ON CONFLICT (topic, name) DO UPDATE SET n = stat_count.n + excluded.n;
    END""",
    """CREATE TRIGGER kit_counted AFTER INSERT ON kit FOR EACH ROW BEGIN
        INSERT INTO stat_count (topic, name, n) VALUES ('kit', NEW.status, 1)
        ON CONFLICT (topic, name) DO UPDATE SET n = stat_count.n + 1;
    END""",
    """CREATE TRIGGER kit_uncounted AFTER DELETE ON kit FOR EACH ROW BEGIN
        UPDATE stat_count SET n = n - 1 WHERE topic = 'kit' AND name = OLD.status;
    END""",
    """CREATE TRIGGER kit_recounted AFTER UPDATE OF status ON kit FOR EACH ROW
    WHEN OLD.status <> NEW.status BEGIN
        INSERT INTO stat_count (topic, name, n)
        SELECT 'kit', counted, delta FROM (SELECT OLD.status AS counted, -1 AS delta
            UNION ALL SELECT NEW.status, 1) AS change WHERE true ORDER BY counted
        ON CONFLICT (topic, name) DO UPDATE SET n = stat_count.n + excluded.n;
    END""",
    """CREATE TRIGGER render_counted AFTER INSERT ON render FOR EACH ROW BEGIN
        UPDATE stat_count SET n = n + 1 WHERE topic = 'render' AND name = '';
    END""",
    """CREATE TRIGGER render_uncounted AFTER DELETE ON render FOR EACH ROW BEGIN
        UPDATE stat_count SET n = n - 1 WHERE topic = 'render' AND name = '';
    END""",
    "INSERT INTO stat_count (topic, name, n) SELECT 'stem', category, count(*) FROM stem "
    "GROUP BY category",
    "INSERT INTO stat_count (topic, name, n) SELECT 'journal', state, count(*) FROM ingestitem "
    "GROUP BY state",
    "INSERT INTO stat_count (topic, name, n) SELECT 'kit', status, count(*) FROM kit "
    "GROUP BY status",
    "INSERT INTO stat_count (topic, name, n) SELECT 'render', '', count(*) FROM render",
]

# Version 10: a revision per kit, which the database bumps whenever a stem of the kit is
# added, removed or relabelled (the labels a kit profile is computed from: category, kind,
# tempo, key, analysis version). A render then finds the stale profiles from the kit rows
# alone; before, it read every stem of the library to digest their labels, which at a million
# stems took longer than the render.
_V10 = [
    "ALTER TABLE kit ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",
    """CREATE TRIGGER stem_revises_kit AFTER INSERT ON stem FOR EACH ROW BEGIN
        UPDATE kit SET revision = revision + 1 WHERE id = NEW.kit_id;
    END""",
    """CREATE TRIGGER stem_leaves_kit AFTER DELETE ON stem FOR EACH ROW BEGIN
        UPDATE kit SET revision = revision + 1 WHERE id = OLD.kit_id;
    END""",
    """CREATE TRIGGER stem_relabels_kit AFTER UPDATE OF kit_id, category, kind, bpm,
    musical_key, analysis_version ON stem FOR EACH ROW BEGIN
        UPDATE kit SET revision = revision + 1 WHERE id = OLD.kit_id OR id = NEW.kit_id;
    END""",
]

# Version 11: what decided a stem's loop or one-shot (the name, its category's default, its
# audio, or its kit), so the kit pass can take a stem its audio read as a one-shot for a
# loop of whole bars at the kit's tempo and still know, on its next run, what the analysis
# said. Stored stems read "none" until their re-analysis (ANALYSIS_VERSION 5); cached
# analyses lack the field, so those few files are analysed again.
_V11 = [
    "ALTER TABLE stem ADD COLUMN kind_source TEXT NOT NULL DEFAULT 'none'",
    "UPDATE ingestitem SET state = 'discovered', analysis = NULL WHERE state = 'analysed'",
]

MIGRATIONS: dict[int, list[str]] = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6, 7: _V7,
                                    8: _V8, 9: _V9, 10: _V10, 11: _V11}
LATEST = max(MIGRATIONS)


def read_version(db: Database) -> int:
    """Schema version of an open database; 0 for an empty one."""
    db.execute_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute_sql("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(db: Database, *, target: int = LATEST,
            on_step: Callable[[int], None] | None = None) -> int:
    """Apply every migration above the current version up to `target`, each atomically.

    On PostgreSQL the SQL runs as `daemon.store.dialect.to_postgres` translates it, under
    a lock, so many workers starting at once migrate a server once. Returns the resulting
    version. A database newer than this release is refused rather than silently mis-read.
    """
    translate = dialect.translator(db)
    with dialect.migration_lock(db):
        current = read_version(db)
        if current > LATEST:
            raise StoreError(f"database schema v{current} is newer than this release "
                             f"(v{LATEST}); upgrade Traum-Engine")
        for version in range(current + 1, target + 1):
            with db.atomic():
                for statement in MIGRATIONS[version]:
                    db.execute_sql(translate(statement))
                db.execute_sql(f"INSERT INTO schema_version (version) VALUES ({db.param})",
                               (version,))
            if on_step:
                on_step(version)
    return max(current, target)
