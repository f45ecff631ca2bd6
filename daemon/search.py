"""`traum search`: stems ranked by a text query or by similarity to another stem."""

from __future__ import annotations

from daemon.config import Config
from daemon.errors import TraumError
from daemon.store import queries
from daemon.store.db import open_database
from daemon.store.records import StemRecord


def search_library(config: Config, query: str, *, category: str | None = None,
                   like: int | None = None, limit: int = 20) -> list[tuple[StemRecord, float]]:
    """Rank library stems; `like` (a stem id) ranks by vector similarity, else by `query`.

    Text words are expanded through the lexicon, so German words find English tags.
    """
    open_database(config.paths.database)
    if like is not None:
        return _rank_similar(queries.list_stems(config.paths.library), like, category, limit)
    stems = queries.list_stems(config.paths.library, category=category)
    if not query.strip():
        raise TraumError("search: give a QUERY, or --like STEM_ID")
    from daemon.compose.rules import load_rules
    from daemon.embed.textsearch import rank_text

    lexicon = load_rules(config.paths.rules).lexicon
    return rank_text(query, stems, expand=lexicon.terms_for, limit=limit)


def _rank_similar(stems: list[StemRecord], like: int, category: str | None,
                  limit: int) -> list[tuple[StemRecord, float]]:
    """`stems` is the whole library: the target may lie outside `category`."""
    from daemon.embed.index import VectorIndex

    target = next((s for s in stems if s.id == like), None)
    if target is None:
        raise TraumError(f"search --like {like}: no stem with that id")
    if target.embedding is None:
        raise TraumError(f"search --like {like}: that stem has no vector yet")
    usable = [s for s in stems if s.embedding is not None
              and s.embedding_model == target.embedding_model
              and (not category or s.category == category)]
    index = VectorIndex.from_records(usable)
    by_id = {s.id: s for s in usable}
    return [(by_id[i], score) for i, score in index.nearest(target.embedding, limit,
                                                            exclude=(like,))]
