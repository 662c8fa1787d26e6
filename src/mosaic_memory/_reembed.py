"""`reembed`: an admin call that rewrites every insight's vector with another embedder."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from mosaic_storage._migrations import HNSW_INDEX, hnsw_index_ddl
from mosaic_storage._types import utcnow

from ._embedders import Embedder
from ._memory import GENERATIONS, INSIGHTS
from ._open import DIM_KEY, EMBEDDER_KEY, META

if TYPE_CHECKING:
    from mosaic_storage import Store

BATCH = 1000


def reembed(store: Store, embedder: Embedder) -> int:
    """Re-embed every insight of every user with ``embedder`` and record it; returns how many.

    One transaction: readers see the old vectors or the new ones, never a mix. On pgvector
    a new dimension changes the column to ``vector(dim)`` and rebuilds the HNSW index as
    schema creation builds it: on the vectors up to 2,000 dimensions, on their ``halfvec``
    cast up to 4,000, and none above (search is then exact).
    This is an admin function: it reads across users.
    """
    vector = store.dialect == "postgresql" and store.capabilities.vector
    with store.engine.begin() as conn:
        if vector:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
            conn.exec_driver_sql(
                f"ALTER TABLE insights ALTER COLUMN embedding TYPE vector({int(embedder.dim)}) USING NULL"
            )
        done = 0
        last = ""
        while True:
            rows = conn.execute(
                sa.select(INSIGHTS.c.id, INSIGHTS.c.text)
                .where(INSIGHTS.c.id > last)
                .order_by(INSIGHTS.c.id)
                .limit(BATCH)
            ).all()
            if not rows:
                break
            vectors = embedder.embed([row.text for row in rows])
            conn.execute(
                sa.update(INSIGHTS)
                .where(INSIGHTS.c.id == sa.bindparam("b_id"))
                .values(embedding=sa.bindparam("b_embedding", type_=INSIGHTS.c.embedding.type)),
                [{"b_id": row.id, "b_embedding": vectors[i]} for i, row in enumerate(rows)],
            )
            done += len(rows)
            last = rows[-1].id
        index = hnsw_index_ddl(int(embedder.dim)) if vector else None
        if index is not None:
            conn.exec_driver_sql(index)
        now = utcnow()
        for key, value in ((EMBEDDER_KEY, embedder.name), (DIM_KEY, str(embedder.dim))):
            if (
                conn.execute(
                    sa.update(META).where(META.c.key == key).values(value=value, updated_at=now)
                ).rowcount
                == 0
            ):
                conn.execute(sa.insert(META).values(key=key, value=value, updated_at=now))
        # Every process's in-memory vectors are now stale.
        conn.execute(sa.update(GENERATIONS).values(generation=GENERATIONS.c.generation + 1))
    return done
