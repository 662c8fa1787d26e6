"""Memory tools: remember and recall insights, set and get preferences, for the session's user."""

from __future__ import annotations

from typing import Any

from mosaic_memory import MemoryStore

from ._registry import ToolError, ToolSet

MAX_RECALL = 20


class MemoryTools(ToolSet):
    """Tools over a `MemoryStore`, every call scoped to ``user_id`` (the model cannot pick a user).

    Writes are made as the agent (``source="agent"``): preferences the user made immutable
    stay as they are, and the tool says so.
    """

    group = "memory"
    names = ("remember", "recall", "set_preference", "get_preference")

    def __init__(self, memory: MemoryStore, user_id: str) -> None:
        self.memory = memory
        self.user_id = user_id

    def remember(self, text: str, category: str | None = None) -> dict[str, Any]:
        """Store something learned about the user for later conversations.

        Args:
            text: the fact or insight, as one self-contained sentence.
            category: an optional label, e.g. "preferences" or "work".
        """
        if not text.strip():
            raise ToolError("give the text to remember")
        insight_id = self.memory.insights.add(text, user_id=self.user_id, category=category, source="agent")
        return {"id": insight_id, "remembered": text}

    def recall(self, query: str, limit: int = 5) -> list[dict[str, Any]]:
        """Search what was remembered about the user, best matches first.

        Args:
            query: what to look for, in words.
            limit: how many results, 1 to 20.
        """
        if not 1 <= limit <= MAX_RECALL:
            raise ToolError(f"limit must be between 1 and {MAX_RECALL}")
        hits = self.memory.insights.search(query, user_id=self.user_id, limit=limit)
        return [
            {"id": hit.id, "text": hit.text, "score": round(hit.score, 4), "category": hit.category}
            for hit in hits
        ]

    def set_preference(
        self, key: str, value: str | int | float | bool | None, category: str | None = None
    ) -> dict[str, Any]:
        """Set one of the user's preferences (the user may have locked some; those are not changed).

        Args:
            key: the preference's name, e.g. "answer_style".
            value: its new value.
            category: an optional label for grouping.
        """
        if not key.strip():
            raise ToolError("give the preference's key")
        pref = self.memory.preferences.set(self.user_id, key, value, category=category, source="agent")
        return {"key": pref.key, "value": pref.value, "category": pref.category}

    def get_preference(self, key: str) -> dict[str, Any]:
        """Read one of the user's preferences.

        Args:
            key: the preference's name.
        """
        pref = self.memory.preferences.get_record(self.user_id, key)
        if pref is None:
            return {"key": key, "found": False}
        return {"key": key, "found": True, "value": pref.value, "category": pref.category}
