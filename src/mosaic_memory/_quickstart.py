"""A first look at memory: add a few insights for a sample user and search them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._open import open_memory
from ._records import InsightHit, NewInsight

if TYPE_CHECKING:
    from mosaic_storage import Store

SAMPLE_USER = "quickstart-user"
SAMPLE_INSIGHTS = (
    ("Prefers short answers with code examples", "style"),
    ("Works mostly in Python and SQL", "skills"),
    ("Is planning a hiking trip to the Alps in June", "life"),
    ("Drinks green tea, never coffee", "food"),
)
SAMPLE_QUERY = "how long should answers be"


@attrs.frozen
class MemoryQuickstart:
    """What `memory_quickstart` did: the user, how many insights it holds, a search and its hits."""

    user_id: str
    insights: int
    query: str
    hits: tuple[InsightHit, ...]
    backend: str


def memory_quickstart(store: Store) -> MemoryQuickstart:
    """Add sample insights for ``quickstart-user`` to a migrated store and search them.

    Safe to run again: dedupe folds repeated sample insights into the existing ones.
    """
    memory = open_memory(store)
    ids = memory.insights.add_many(
        [NewInsight(text, category=category) for text, category in SAMPLE_INSIGHTS], user_id=SAMPLE_USER
    )
    hits = memory.insights.search(SAMPLE_QUERY, user_id=SAMPLE_USER, limit=3)
    return MemoryQuickstart(
        user_id=SAMPLE_USER,
        insights=len(set(ids)),
        query=SAMPLE_QUERY,
        hits=tuple(hits),
        backend=memory.backend,
    )
