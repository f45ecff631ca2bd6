"""`traum search`: stems ranked by a text query or by similarity to another stem."""

from __future__ import annotations

from daemon.config import Config
from daemon.errors import TraumError
from daemon.store import queries
from daemon.store.db import open_store
from daemon.store.records import StemRecord


def search_library(config: Config, query: str, *, category: str | None = None,
                   like: int | None = None, limit: int = 20) -> list[tuple[StemRecord, float]]:
    """Rank library stems; `like` (a stem id) ranks by vector similarity, else by `query`.

    Text words are expanded through the lexicon, so German words find English tags.
    """
    open_store(config)
    if like is not None:
        return _rank_similar(config, like, category, limit)
    stems = queries.list_stems(config.paths.library, category=category)
    if not query.strip():
        raise TraumError("search: give a QUERY, or --like STEM_ID")
    from daemon.compose.rules import load_rules
    from daemon.embed.textsearch import rank_text

    lexicon = load_rules(config.paths.rules).lexicon
    return rank_text(query, stems, expand=lexicon.terms_for, limit=limit)


def _rank_similar(config: Config, like: int, category: str | None,
                  limit: int) -> list[tuple[StemRecord, float]]:
    """Stems of the target's embedding model closest to it (`daemon.vectorsearch`); the
    target may lie outside `category`."""
    from daemon.vectorsearch import nearest_stems

    target = queries.stems_by_ids(config.paths.library, [like]).get(like)
    if target is None:
        raise TraumError(f"search --like {like}: no stem with that id")
    if target.embedding is None or target.embedding_model is None:
        raise TraumError(f"search --like {like}: that stem has no vector yet")
    return nearest_stems(config.paths, target.embedding, target.embedding_model, limit,
                         exclude=(like,), category=category or None)
