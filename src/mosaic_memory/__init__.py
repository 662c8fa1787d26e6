"""Mosaic memory: preferences, insights with vector + keyword search, and skills, scoped by user.

Everything users may touch is listed in ``__all__``; other modules may change.
"""

from __future__ import annotations

from ._embedders import Embedder, HashingEmbedder
from ._errors import EmbedderMismatchError, NotFoundError
from ._filters import compile_filters
from ._memory import UNSET, Insights, Memory, Preferences, Skills
from ._minilm import MiniLMEmbedder
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
    "Memory",
    "MemoryQuickstart",
    "MemoryStore",
    "MiniLMEmbedder",
    "NewInsight",
    "NotFoundError",
    "OpenAICompatibleEmbedder",
    "Preference",
    "PreferenceStore",
    "Preferences",
    "Skill",
    "SkillStore",
    "Skills",
    "compile_filters",
    "memory_quickstart",
    "open_memory",
    "reembed",
    "to_dict",
]
