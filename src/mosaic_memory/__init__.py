"""Mosaic memory: preferences, insights with vector + keyword search, skills and agent logs, scoped by user.

Everything users may touch is listed in ``__all__``; other modules may change.
"""

from __future__ import annotations

from mosaic_storage._keyword_index import KeywordIndexReport, check_keyword_index, rebuild_keyword_index

from ._embedders import Embedder, HashingEmbedder
from ._errors import EmbedderMismatchError, NotFoundError, SummarizationError
from ._filters import compile_filters
from ._logs import AgentLogs, LogEntry, LogPage, NewLogEntry, TierMove
from ._memory import UNSET, Insights, Memory, Preferences, Skills, default_dedupe_threshold
from ._minilm import MiniLMEmbedder
from ._open import MEMORY_SCHEMA, open_memory
from ._openai import EmbedderError, OpenAICompatibleEmbedder
from ._protocols import InsightStore, LogStore, MemoryStore, PreferenceStore, SkillStore
from ._quickstart import MemoryQuickstart, memory_quickstart
from ._records import HistoryEntry, Insight, InsightHit, NewInsight, Preference, Skill, to_dict
from ._reembed import reembed
from ._summarize import (
    JOB_KIND,
    ExtractiveSummarizer,
    ScheduledRun,
    SummarizationJob,
    SummarizationReport,
    Summarizer,
    UserSummary,
    next_run,
    next_scheduled_run,
    summarization_jobs,
    summarize_handler,
    summarize_job,
    summarize_logs,
)

__all__ = [
    "JOB_KIND",
    "MEMORY_SCHEMA",
    "UNSET",
    "AgentLogs",
    "Embedder",
    "EmbedderError",
    "EmbedderMismatchError",
    "ExtractiveSummarizer",
    "HashingEmbedder",
    "HistoryEntry",
    "Insight",
    "InsightHit",
    "InsightStore",
    "Insights",
    "KeywordIndexReport",
    "LogEntry",
    "LogPage",
    "LogStore",
    "Memory",
    "MemoryQuickstart",
    "MemoryStore",
    "MiniLMEmbedder",
    "NewInsight",
    "NewLogEntry",
    "NotFoundError",
    "OpenAICompatibleEmbedder",
    "Preference",
    "PreferenceStore",
    "Preferences",
    "ScheduledRun",
    "Skill",
    "SkillStore",
    "Skills",
    "SummarizationError",
    "SummarizationJob",
    "SummarizationReport",
    "Summarizer",
    "TierMove",
    "UserSummary",
    "check_keyword_index",
    "compile_filters",
    "default_dedupe_threshold",
    "memory_quickstart",
    "next_run",
    "next_scheduled_run",
    "open_memory",
    "rebuild_keyword_index",
    "reembed",
    "summarization_jobs",
    "summarize_handler",
    "summarize_job",
    "summarize_logs",
    "to_dict",
]
