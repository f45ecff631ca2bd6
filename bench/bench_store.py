"""Benchmark the library store at a million stems, on SQLite and on PostgreSQL.

Fills each database (migrated by the engine's own `open_store`) with `--rows` synthetic stem
rows (default 1,000,000) in ~`--rows`/50 kits, one journal row per stem, then times, as the
median of `--runs` warm runs of the store call in this process (the command's Python start
and printing are not the store's and are left out):

- ``traum stems --category kick --limit 50``: the first page, and a late page by keyset
  (``--after ID``, 90 % of the way through the kicks);
- the renderer's candidates for a plan: the stems of the plan's categories in a backbone kit
  and two more (`queries.kit_stems`, the kits a track may draw on);
- ``traum status``: `daemon.status.collect_status` (counts by category, journal state and
  kit status, the last errors);
- an ingest's write: one stem committed with its journal row, in one transaction, as
  `queries.commit_stem` does for each file (the counting triggers of schema v9 run in it);

then, as a second table, a render's reads of that library before it touches audio
(`time_render`): the kit profiles (half the kits carry no genre word, so their families are
inferred), the plan with its backbone and candidate stems, and the choice of every lane.

Rows are bulk-loaded (``executemany`` in one transaction on SQLite, ``COPY`` on PostgreSQL)
into a database of schema v8, a library from before the counts; `open_store` then migrates it
as it would a user's, counting the rows (the time is printed), so a million rows are not
loaded through the row triggers. PostgreSQL is then ``VACUUM ANALYZE``d as autovacuum would
after a bulk load; SQLite gets no ``ANALYZE`` (the engine never runs one). Without
``--database-url`` a throwaway PostgreSQL cluster is started with ``.ci/start-postgres`` and
stopped at the end.

Run: ``.venv/bin/python bench/bench_store.py [--rows 1000000] [--database-url URL]``.
The target is 100 ms per store call. Prints two Markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from daemon.config import ClusterSettings, Config, ensure_folders, load_config
from daemon.status import collect_status
from daemon.store import queries, schema
from daemon.store.db import open_store, server_database

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 100.0
BEFORE_COUNTS = 8  # the schema version the rows are loaded into
CHUNK = 50_000
# Share of stems per category: drums dominate real kits (a kick, snare, hats and loops in
# nearly every kit; one or two pads).
CATEGORIES = {"kick": 0.12, "snare": 0.09, "clap": 0.06, "hihat": 0.14, "cymbal": 0.04,
              "tom": 0.03, "perc": 0.09, "drum_loop": 0.07, "bass": 0.08, "lead": 0.05,
              "synth": 0.04, "chord": 0.03, "arp": 0.03, "pad": 0.04, "atmo": 0.03,
              "fx": 0.04, "vocal": 0.02}
TONAL = {"bass", "lead", "synth", "chord", "arp", "pad", "vocal"}
KEYS = [f"{note} {mode}" for note in ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A",
                                      "A#", "B") for mode in ("major", "minor")]
TAGS = ("dark", "bright", "warm", "driving", "punchy", "airy", "industrial", "deep", "acid",
        "dusty", "wide", "clean", "distorted", "melodic", "minimal")
GENRES = ("Techno", "House", "Trance", "DnB", "Lofi", "Dubstep", "Ambient", "Garage")
PROMPT = "driving industrial techno 138 bpm"
VECTOR_DIM = 74  # the features-v1 width, for the classifier features and the embedding
STEM_COLUMNS = (
    "kit_id", "rel_path", "stored_path", "content_hash", "category", "category_confidence",
    "category_source", "kind", "bpm", "bpm_confidence", "bpm_source", "musical_key",
    "key_confidence", "key_source", "duration", "sample_rate", "channels", "lufs", "peak_db",
    "rms_db", "crest_db", "tags", "embedding", "added_at", "embedding_model", "descriptors",
    "features", "analysis_version", "pulse_bpm", "pulse_confidence", "pulse_kicks", "chroma",
    "bpm_reason", "key_trusted", "key_reason")
ITEM_COLUMNS = ("kit_id", "rel_path", "state", "reason", "content_hash", "stem_id",
                "attempts", "updated_at")


# -- synthetic library -------------------------------------------------------------------

def kit_rows(kits: int, now: float) -> list[tuple]:
    """(name, source_kind, status, added_at, finished_at, source_name) per kit."""
    rng = np.random.default_rng(7)
    rows = []
    for number in range(kits):
        genre = GENRES[rng.integers(len(GENRES))]
        # Half the kits carry no genre word: their family is inferred from tempo and sound.
        name = f"Kit {number:05d}" if number % 2 else f"{genre} Kit {number:05d}"
        status = "ingesting" if number % 997 == 0 else "complete"
        rows.append((name, "zip", status, now - 86400 * 365 + number, now - number,
                     f"{name}.zip"))
    return rows


def stem_chunks(rows: int, kits: int, now: float) -> Iterator[tuple[list[tuple], list[tuple]]]:
    """(stem rows, journal rows) in chunks of `CHUNK`; stem ids are 1..rows in order."""
    rng = np.random.default_rng(11)
    names, weights = list(CATEGORIES), np.array(list(CATEGORIES.values()))
    for start in range(0, rows, CHUNK):
        count = min(CHUNK, rows - start)
        category = rng.choice(len(names), size=count, p=weights / weights.sum())
        kit = np.sort(rng.integers(1, kits + 1, size=count))
        loop = rng.random(count) < 0.45
        bpm = rng.choice([90, 120, 124, 128, 130, 135, 138, 140, 150, 174], size=count)
        key = rng.integers(len(KEYS), size=count)
        values = rng.random((count, 8))
        vectors = rng.normal(size=(count, VECTOR_DIM)).astype(np.float32)
        stems, items = [], []
        for row in range(count):
            stem_id = start + row + 1
            cat = names[category[row]]
            tonal = cat in TONAL
            is_loop = bool(loop[row]) or cat == "drum_loop"
            rel = f"{cat.title()}/{cat}_{stem_id:07d}.wav"
            tags = json.dumps([TAGS[i] for i in rng.choice(len(TAGS), size=2, replace=False)])
            descriptors = json.dumps({"flux": round(values[row, 0], 6),
                                      "centroid": round(1000 + 4000 * values[row, 1], 6)})
            chroma = values[row, :6].astype(np.float32).repeat(2).tobytes() \
                if tonal else None
            stems.append((
                int(kit[row]), rel, f"stems/k{kit[row]}/{rel}", f"h{stem_id:012x}", cat,
                float(values[row, 2]), "filename", "loop" if is_loop else "oneshot",
                float(bpm[row]) if is_loop else None, 0.9, "filename" if is_loop else "none",
                KEYS[key[row]] if tonal else None, 0.7, "audio" if tonal else "none",
                8.0 if is_loop else 0.4, 44100, 2, -14 + 6 * float(values[row, 3]),
                -1.0, -16.0, 12.0, tags, vectors[row].tobytes(), now - stem_id,
                "features-v1", descriptors, vectors[row].tobytes(), 1,
                float(bpm[row]) if is_loop else None, float(values[row, 4]),
                bool(values[row, 5] < 0.1), chroma, "", bool(values[row, 6] < 0.5), ""))
            state = "quarantined" if values[row, 7] < 0.01 else "stored"
            items.append((int(kit[row]), rel, state,
                          "undecodable: not audio" if state == "quarantined" else "",
                          f"h{stem_id:012x}", stem_id if state == "stored" else None, 1,
                          now - stem_id))
        yield stems, items


def release_database(config: Config, version: int):
    """The empty database `config` names, migrated only up to schema `version`."""
    from peewee import SqliteDatabase

    url = config.cluster.database_url
    db = server_database(url) if url else SqliteDatabase(str(config.paths.database))
    db.connect()
    schema.migrate(db, target=version)
    return db


def fill(db, *, rows: int, kits: int) -> float:
    """Load the synthetic library into the empty `db`; return the seconds taken."""
    started, now = time.perf_counter(), time.time()
    insert = _copy_rows if not _is_sqlite(db) else _insert_rows
    with db.atomic():
        insert(db, "kit", ("name", "source_kind", "status", "added_at", "finished_at",
                           "source_name"), kit_rows(kits, now))
        for stems, items in stem_chunks(rows, kits, now):
            insert(db, "stem", STEM_COLUMNS, stems)
            insert(db, "ingestitem", ITEM_COLUMNS, items)
    return time.perf_counter() - started


def _is_sqlite(db) -> bool:
    from peewee import SqliteDatabase

    return isinstance(db, SqliteDatabase)


def _insert_rows(db, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    marks = ", ".join("?" * len(columns))
    db.connection().executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                                rows)


def _copy_rows(db, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    with db.cursor() as cursor, cursor.copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# -- the timed calls ---------------------------------------------------------------------

def median_ms(call: Callable[[], object], runs: int) -> float:
    call()  # warm: the first run pays for the page cache, not the query plan
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def plan_categories(config: Config) -> list[str]:
    from daemon.compose.arrange import plan_prompt
    from daemon.compose.rules import load_rules

    plan = plan_prompt(PROMPT, load_rules(config.paths.rules), seed=1)
    return sorted({query.category for section in plan.structure
                   for query in section.stem_queries})


def time_store(config: Config, runs: int) -> dict[str, float]:
    """Milliseconds per call (median of `runs`) on the database `config` opens."""
    db = open_store(config)
    if not _is_sqlite(db):
        db.execute_sql("VACUUM ANALYZE")
    library = config.paths.library
    kicks = db.execute_sql("SELECT count(*) FROM stem WHERE category = 'kick'").fetchone()[0]
    [(late,)] = db.execute_sql("SELECT id FROM stem WHERE category = 'kick' ORDER BY id "
                               f"LIMIT 1 OFFSET {int(kicks * 0.9)}").fetchall()
    total = db.execute_sql("SELECT count(*) FROM kit").fetchone()[0]
    kits = [name for (name,) in db.execute_sql(  # three kits from the middle of the library
        f"SELECT name FROM kit WHERE status = 'complete' ORDER BY id LIMIT 3 OFFSET {total // 2}")]
    categories = plan_categories(config)
    page = queries.list_stems(library, category="kick", limit=50)
    later = queries.list_stems(library, category="kick", after=late, limit=50)
    found = queries.kit_stems(library, kits, categories=categories)
    assert len(page) == len(later) == 50 and all(s.category == "kick" for s in later)
    assert found and {s.kit for s in found} <= set(kits)
    results = {
        "stems --category kick --limit 50 (first page)": median_ms(
            lambda: queries.list_stems(library, category="kick", limit=50), runs),
        f"stems --category kick --limit 50 --after {late} (late page)": median_ms(
            lambda: queries.list_stems(library, category="kick", after=late, limit=50), runs),
        f"renderer candidates: {len(categories)} categories in 3 kits ({len(found)} stems)":
            median_ms(lambda: queries.kit_stems(library, kits, categories=categories), runs),
        "status (counts, journal, last errors)": median_ms(
            lambda: collect_status(config), runs),
        "ingest: commit one stem and its journal row": median_ms(
            commit_stems(runs + 1), runs),
    }
    db.close()
    return results


def time_render(config: Config, runs: int) -> dict[str, float]:
    """Milliseconds of a render's reads of the library `config` opens (median of `runs`;
    of fewer runs for the slow first reads), before any audio is touched: the kit profiles
    (computed for every kit, read anew by a new process, unchanged, one kit changed), the plan
    with its backbone and candidate stems, and the choice of every lane among them. Tonal
    stems are not heard (synthetic rows have no audio): the ear's cached chroma reads are
    not in these figures."""
    from daemon import profiles
    from daemon.categories import load_categories
    from daemon.kits.refresh import ProfileCache, load_library
    from daemon.render.scoring import Scorer
    from daemon.render.select import select_stems
    from daemon.store.models import Kit, Stem
    from daemon.work import Engine

    engine = Engine(config)
    categories = load_categories(config.paths.rules)

    def read(cache: ProfileCache):
        return load_library(config.paths.library, config.paths.rules, cache=cache,
                            hear=lambda stems: {})

    started = time.perf_counter()
    kits = read(ProfileCache())
    computed = (time.perf_counter() - started) * 1000
    cache = ProfileCache()
    read(cache)
    tonal = (Stem.select(Stem.id).join(Kit).where((Stem.category == "pad")
                                                  & (Kit.status == "complete"))
             .limit(1).scalar())

    def relabel() -> None:
        old = Stem.get_by_id(tonal).musical_key
        Stem.update(musical_key="C minor" if old != "C minor" else "A minor").where(
            Stem.id == tonal).execute()
        read(cache)

    def candidates():
        plan = engine.plan_text(PROMPT, seed=1, kits=kits)
        backbone = profiles.plan_backbone(plan, kits, categories=categories, config=config)
        return plan, backbone, profiles.candidate_stems(plan, kits, backbone,
                                                        categories=categories, config=config)

    def select():
        return select_stems(plan, stems, settings=config.render, categories=categories,
                            kits=kits, backbone=backbone)

    plan, backbone, stems = candidates()
    shortlist = len({stem.kit for stem in stems})
    selection = select()
    scorer = Scorer(plan, categories, {}, backbone=backbone)
    for pick in selection.picks[:8]:  # the stems chosen so far, which similarity looks to
        scorer.commit(pick.stem, pick.fit)
    kicks = [stem for stem in stems if stem.category == "kick"]
    assert selection.picks and {pick.stem.kit for pick in selection.picks} <= {
        stem.kit for stem in stems}
    slow = max(1, runs // 3)
    return {
        f"kit profiles computed for all {len(kits.profiles):,} kits (once)": computed,
        "kit profiles, first read by a process": median_ms(
            lambda: read(ProfileCache()), slow),
        "kit profiles, unchanged since the last read": median_ms(lambda: read(cache), runs),
        "kit profiles, one stem relabelled since": median_ms(relabel, runs),
        "plan, backbone and candidate stems": median_ms(candidates, runs),
        f"every lane chosen among {len(stems):,} candidates of {shortlist} kits": median_ms(
            select, runs),
        f"similarity ranking of one lane ({len(kicks)} kick candidates)": median_ms(
            lambda: sorted(kicks, key=scorer.similarity), runs),
    }


def commit_stems(count: int) -> Callable[[], None]:
    """A call that commits the next of `count` journalled files of a new kit as a stem."""
    kit = queries.claim_kit("bench.zip", "Bench Kit", "zip")
    queries.record_items(kit, [f"Bench/{number:04d}.wav" for number in range(count)])
    items = iter(queries.pending_items(kit))
    [row], _ = next(stem_chunks(1, 1, time.time()))
    skipped = {"kit_id", "rel_path", "stored_path", "content_hash", "added_at"}
    columns = {name: value for name, value in zip(STEM_COLUMNS, row, strict=True)
               if name not in skipped}

    def commit() -> None:
        item = next(items)
        queries.commit_stem(item, columns, stored_path=f"stems/Bench Kit/{item.rel_path}",
                            content_hash=f"bench-{item.id}")

    return commit


# -- the databases -----------------------------------------------------------------------

def with_url(config: Config, url: str) -> Config:
    return dataclasses.replace(config, cluster=ClusterSettings(
        url, config.cluster.claim_seconds, config.cluster.heartbeat_seconds))


def start_cluster(folder: Path) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run([str(ROOT / ".ci" / "start-postgres"), str(folder), str(port)],
                          capture_output=True, text=True, check=True)
    admin = done.stdout.strip().splitlines()[-1]
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE traum_bench")
    return admin.rsplit("/", 1)[0] + "/traum_bench"


def stop_cluster(folder: Path) -> None:
    pg_ctl = shutil.which("pg_ctl") or sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
    command = [str(pg_ctl), "-D", str(folder / "data"), "-m", "fast", "stop"]
    if folder.owner() != "root" and Path("/usr/sbin/runuser").exists():
        command = ["runuser", "-u", folder.owner(), "--", *command]
    subprocess.run(command, capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kits", type=int, default=0, help="kits (default: rows / 50)")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--database-url", default="", help="an empty PostgreSQL database "
                        "(default: a throwaway cluster)")
    args = parser.parse_args()
    kits = args.kits or max(3, args.rows // 50)
    work = Path(tempfile.mkdtemp(prefix="traum-bench-store-", dir="/tmp"))
    work.chmod(0o755)  # the throwaway cluster may run as another account
    base = load_config(None)
    base = dataclasses.replace(base, paths=dataclasses.replace(
        base.paths, inbox=work / "inbox", library=work / "library",
        requests=work / "outbox", rules=ROOT / "rules"))
    ensure_folders(base.paths)
    cluster = None if args.database_url else work / "pg"
    try:
        url = args.database_url or start_cluster(cluster)
        table, renders = {}, {}
        for name, config in (("SQLite", base), ("PostgreSQL", with_url(base, url))):
            old = release_database(config, BEFORE_COUNTS)
            seconds = fill(old, rows=args.rows, kits=kits)
            old.close()
            started = time.perf_counter()
            open_store(config).close()
            print(f"{name}: filled {args.rows:,} stems in {kits:,} kits in {seconds:.0f} s; "
                  f"migrated to v{schema.LATEST} (counting them) in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            table[name] = time_store(config, args.runs)
            renders[name] = time_render(config, args.runs)
    finally:
        if cluster is not None:
            stop_cluster(cluster)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n| call ({args.rows:,} stems, median of {args.runs}) | SQLite ms | PostgreSQL ms |")
    print("|---|---:|---:|")
    for call in table["SQLite"]:
        sqlite_ms, pg_ms = table["SQLite"][call], table["PostgreSQL"][call]
        flag = "" if max(sqlite_ms, pg_ms) <= TARGET_MS else " (over 100 ms)"
        print(f"| `{call}`{flag} | {sqlite_ms:.1f} | {pg_ms:.1f} |")
    print(f"\n| a render's reads ({args.rows:,} stems, {kits:,} kits) | SQLite ms | "
          "PostgreSQL ms |")
    print("|---|---:|---:|")
    for (call, sqlite_ms), pg_ms in zip(renders["SQLite"].items(),
                                        renders["PostgreSQL"].values(), strict=True):
        print(f"| {call} | {sqlite_ms:.1f} | {pg_ms:.1f} |")


if __name__ == "__main__":
    main()
