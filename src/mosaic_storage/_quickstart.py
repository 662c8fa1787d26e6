"""A first run in a few seconds: open a local store, migrate it, write and read back sample rows."""

from __future__ import annotations

import attrs
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ._migrations import current, upgrade
from ._store import Store
from .schema import Conversation, Message, Preference, Project, Task, User


@attrs.frozen
class QuickstartStep:
    """One thing the quickstart did, and what it read back."""

    action: str
    detail: str


@attrs.frozen
class QuickstartReport:
    """What `quickstart` did, step by step."""

    url: str
    revision: str | None
    steps: tuple[QuickstartStep, ...]


def quickstart(store: Store) -> QuickstartReport:
    """Migrate ``store`` to head, write a user, project, task, conversation and preference, read them back.

    Safe to run again: each run adds its own sample user.
    """
    steps = [QuickstartStep("store", f"opened {store.url} ({store.tier.value} tier, {store.dialect})")]
    revision = upgrade(store)
    steps.append(QuickstartStep("schema", f"migrated to revision {revision}"))
    with Session(store.engine) as session, session.begin():
        user = User(name="Ada", email=None)
        session.add(user)
        session.flush()
        project = Project(name="Quickstart", owner_id=user.id, description="sample project")
        session.add(project)
        session.flush()
        session.add(Task(project_id=project.id, created_by=user.id, title="Try Mosaic", priority="high"))
        conversation = Conversation(user_id=user.id, title="Hello")
        session.add(conversation)
        session.flush()
        session.add_all(
            [
                Message(conversation_id=conversation.id, seq=1, role="user", content="Hi!"),
                Message(conversation_id=conversation.id, seq=2, role="assistant", content="Hello, Ada."),
            ]
        )
        session.add(Preference(user_id=user.id, key="theme", value="dark", source="user"))
        user_id = user.id
    steps.append(
        QuickstartStep("write", "1 user, 1 project, 1 task, 1 conversation, 2 messages, 1 preference")
    )
    with Session(store.engine) as session:
        task = session.scalars(sa.select(Task).join(Project).where(Project.owner_id == user_id)).one()
        messages = session.scalars(
            sa.select(Message).join(Conversation).where(Conversation.user_id == user_id).order_by(Message.seq)
        ).all()
        pref = session.scalars(sa.select(Preference).where(Preference.user_id == user_id)).one()
    steps.append(QuickstartStep("read", f"task {task.title!r} ({task.status}, {task.priority})"))
    steps.append(QuickstartStep("read", " / ".join(f"{m.role}: {m.content}" for m in messages)))
    steps.append(QuickstartStep("read", f"preference {pref.key} = {pref.value!r}"))
    return QuickstartReport(url=store.url, revision=current(store), steps=tuple(steps))
