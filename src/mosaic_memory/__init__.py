"""Mosaic memory: preferences, insights with vector + keyword search, and skills, scoped by user.

Everything users may touch is listed in ``__all__``; other modules may change.
"""

from __future__ import annotations

from mosaic_storage._keyword_index import KeywordIndexReport, check_keyword_index, rebuild_keyword_index

from ._embedders import Embedder, HashingEmbedder
from ._errors import EmbedderMismatchError, NotFoundError
from ._filters import compile_filters
from ._memory import UNSET, Insights, Memory, Preferences, Skills, default_dedupe_threshold
from ._open import open_memory
from ._openai import EmbedderError, OpenAICompatibleEmbedder
from ._protocols import InsightStore, MemoryStore, PreferenceStore, SkillStore
from ._quickstart import MemoryQuickstart, memory_quickstart
from ._records import HistoryEntry, Insight, InsightHit, NewInsight, Preference, Skill, to_dict
from ._reembed import reembed

__all__ = [
    "UNSET",
    "Embedder",
    "EmbedderError",
    "EmbedderMismatchError",
    "HashingEmbedder",
    "HistoryEntry",
    "Insight",
    "InsightHit",
    "InsightStore",
    "Insights",
    "KeywordIndexReport",
    "Memory",
    "MemoryQuickstart",
    "MemoryStore",
    "NewInsight",
    "NotFoundError",
    "OpenAICompatibleEmbedder",
    "Preference",
    "PreferenceStore",
    "Preferences",
    "Skill",
    "SkillStore",
    "Skills",
    "check_keyword_index",
    "compile_filters",
    "default_dedupe_threshold",
    "memory_quickstart",
    "open_memory",
    "rebuild_keyword_index",
    "reembed",
    "to_dict",
]
