"""Users, teams and team memberships (roles ``owner``, ``admin``, ``member``)."""

from __future__ import annotations

from typing import Any

import attrs
import sqlalchemy as sa

from .._errors import AccessDenied, ConflictError
from .._ids import new_id
from .._types import utcnow
from ..schema import TEAM_ROLES
from ._access import WRITE_ROLES, team_members, teams, teams_of, user_visible, users
from ._base import UNSET, Repository, changes, check_one_of, insert_where, not_found, record_columns
from ._records import Membership, Team, User, from_row


class Users(Repository):
    """The people who act on the brain.

    A user sees themselves and everyone who shares a team with them; a user changes only
    themselves.
    """

    def create(self, *, name: str | None = None, email: str | None = None, id: str | None = None) -> User:
        """Register a user (sign-up: the one call with no ``actor``). ``id`` defaults to a new UUIDv7.

        Raises:
            ConflictError: the id or the email is taken.
        """
        now = utcnow()
        values = {"id": id or new_id(), "name": name, "email": email, "created_at": now, "updated_at": now}
        with self._begin() as conn:
            taken = conn.execute(
                sa.select(users.c.id).where(
                    sa.or_(
                        users.c.id == values["id"],
                        sa.and_(users.c.email.is_not(None), users.c.email == email),
                    )
                )
            ).first()
            if taken is not None:
                raise ConflictError(
                    "a user with this id or email already exists", remediation="choose another id or email"
                )
            conn.execute(sa.insert(users).values(**values, email_verified=False))
        return from_row(User, values)

    def get(self, actor: str, user_id: str) -> User:
        """The user ``user_id`` if ``actor`` may see them (themselves or a teammate).

        Raises:
            NotFound: no such user, or not visible to ``actor``.
        """
        query = sa.select(*record_columns(users, User)).where(users.c.id == user_id, user_visible(actor))
        row = self._read(lambda conn: conn.execute(query).first())
        if row is None:
            raise not_found("user", user_id)
        user = User(*row)
        # Teammates see each other's names; an email address stays its owner's to see.
        return user if user_id == actor else attrs.evolve(user, email=None)

    def update(
        self, actor: str, user_id: str, *, name: str | Any | None = UNSET, email: str | Any | None = UNSET
    ) -> User:
        """Change ``actor``'s own name or email.

        Raises:
            NotFound: ``user_id`` is not visible to ``actor``.
            AccessDenied: ``user_id`` is someone else.
        """
        values = changes(name=name, email=email)
        if "email" in values:
            values["email_verified"] = False  # a new address is not verified yet
        with self._begin() as conn:
            row = (
                conn.execute(
                    sa.update(users)
                    .where(users.c.id == user_id, users.c.id == actor)
                    .values(**values, updated_at=utcnow())
                    .returning(*users.c)
                )
                .mappings()
                .first()
            )
            if row is None:
                if conn.execute(
                    sa.select(users.c.id).where(users.c.id == user_id, user_visible(actor))
                ).first():
                    raise AccessDenied("a user may change only themselves")
                raise not_found("user", user_id)
        return from_row(User, row)


_acting = team_members.alias("acting")
_existing = team_members.alias("existing")


def _role_of(actor: str, team: Any, roles: tuple[str, ...]) -> Any:
    tm = _acting
    return sa.exists().where(tm.c.team_id == team, tm.c.user_id == actor, tm.c.role.in_(roles))


class Teams(Repository):
    """Teams and their members.

    Members see the team and its members. Owners and admins add members and change roles;
    only an owner grants or removes the owner role; anyone may leave; a team always keeps at
    least one owner.
    """

    def create(self, actor: str, *, name: str, slug: str | None = None) -> Team:
        """Create a team with ``actor`` as its owner.

        Raises:
            ConflictError: the slug is taken.
        """
        now = utcnow()
        values = {
            "id": new_id(),
            "name": name,
            "slug": slug or new_id(),
            "owner_id": actor,
            "created_at": now,
            "updated_at": now,
        }
        with self._begin() as conn:
            if conn.execute(sa.select(teams.c.id).where(teams.c.slug == values["slug"])).first():
                raise ConflictError(
                    f"team slug {values['slug']!r} is taken", remediation="choose another slug"
                )
            if conn.execute(sa.select(users.c.id).where(users.c.id == actor)).first() is None:
                raise not_found("user", actor)
            conn.execute(sa.insert(teams).values(**values))
            conn.execute(
                sa.insert(team_members).values(
                    id=new_id(), team_id=values["id"], user_id=actor, role="owner", created_at=now
                )
            )
        return from_row(Team, values)

    def get(self, actor: str, team_id: str) -> Team:
        """The team, if ``actor`` is a member.

        Raises:
            NotFound: no such team, or ``actor`` is not a member.
        """
        query = sa.select(*record_columns(teams, Team)).where(
            teams.c.id == team_id, teams.c.id.in_(teams_of(actor))
        )
        row = self._read(lambda conn: conn.execute(query).first())
        if row is None:
            raise not_found("team", team_id)
        return Team(*row)

    def list(self, actor: str) -> tuple[Team, ...]:
        """The teams ``actor`` belongs to, oldest first."""
        columns = record_columns(teams, Team)
        query = sa.select(*columns).where(teams.c.id.in_(teams_of(actor))).order_by(teams.c.id)
        return self._read(lambda conn: tuple(Team(*row) for row in conn.execute(query)))

    def members(self, actor: str, team_id: str) -> tuple[Membership, ...]:
        """The members of a team ``actor`` belongs to, in the order they joined.

        Raises:
            NotFound: no such team, or ``actor`` is not a member.
        """
        query = (
            sa.select(*record_columns(team_members, Membership, first="team_id"))
            .where(team_members.c.team_id == team_id, team_members.c.team_id.in_(teams_of(actor)))
            .order_by(team_members.c.created_at, team_members.c.id)
        )
        rows = self._read(lambda conn: conn.execute(query).all())
        if not rows:
            raise not_found("team", team_id)
        return tuple(Membership(*row) for row in rows)

    def role(self, actor: str, team_id: str) -> str | None:
        """``actor``'s role in the team, ``None`` if not a member."""
        query = sa.select(team_members.c.role).where(
            team_members.c.team_id == team_id, team_members.c.user_id == actor
        )
        return self._read(lambda conn: conn.execute(query).scalar())

    def add_member(self, actor: str, team_id: str, user_id: str, role: str = "member") -> Membership:
        """Add ``user_id`` to the team with ``role``; ``actor`` must be an owner or admin.

        Raises:
            NotFound: the team is not visible to ``actor``, or the user does not exist.
            AccessDenied: ``actor`` is a plain member, or an admin granting ``owner``.
            ConflictError: ``user_id`` is already a member.
        """
        check_one_of("role", role, TEAM_ROLES)
        now = utcnow()
        values = {"id": new_id(), "team_id": team_id, "user_id": user_id, "role": role, "created_at": now}
        granting = ("owner",) if role == "owner" else WRITE_ROLES
        with self._begin() as conn:
            self._lock(conn, actor, team_id)
            tm = _existing
            allowed = sa.and_(
                _role_of(actor, team_id, granting),
                sa.exists().where(users.c.id == user_id),
                ~sa.exists().where(tm.c.team_id == team_id, tm.c.user_id == user_id),
            )
            if not insert_where(conn, team_members, values, allowed):
                if not conn.execute(
                    sa.select(sa.literal(1)).where(_role_of(actor, team_id, granting))
                ).first():
                    raise AccessDenied(
                        f"adding a {role} to team {team_id} needs the "
                        f"{'owner' if role == 'owner' else 'owner or admin'} role",
                        remediation="ask an owner of the team",
                    )
                if not conn.execute(sa.select(users.c.id).where(users.c.id == user_id)).first():
                    raise not_found("user", user_id)
                raise ConflictError(
                    f"user {user_id} is already a member of team {team_id}",
                    remediation="use set_role to change their role",
                )
        return from_row(Membership, values)

    def set_role(self, actor: str, team_id: str, user_id: str, role: str) -> Membership:
        """Change a member's role. Owners change any role; admins only between member and admin.

        Raises:
            NotFound: the team is not visible to ``actor``, or ``user_id`` is not a member.
            AccessDenied: ``actor``'s role does not allow this change.
            ConflictError: the team would be left without an owner.
        """
        check_one_of("role", role, TEAM_ROLES)
        with self._begin() as conn:
            self._lock(conn, actor, team_id)
            allowed = sa.or_(
                _role_of(actor, team_id, ("owner",)),
                sa.and_(
                    _role_of(actor, team_id, ("admin",)),
                    team_members.c.role != "owner",
                    sa.literal(role) != "owner",
                ),
            )
            row = (
                conn.execute(
                    sa.update(team_members)
                    .where(team_members.c.team_id == team_id, team_members.c.user_id == user_id, allowed)
                    .values(role=role)
                    .returning(*team_members.c)
                )
                .mappings()
                .first()
            )
            if row is None:
                raise self._membership_denied(conn, team_id, user_id, "change the role of")
            self._keep_an_owner(conn, team_id)
        return from_row(Membership, row)

    def remove_member(self, actor: str, team_id: str, user_id: str) -> None:
        """Remove ``user_id`` from the team: anyone may leave; owners remove anyone, admins non-owners.

        Raises:
            NotFound: the team is not visible to ``actor``, or ``user_id`` is not a member.
            AccessDenied: ``actor``'s role does not allow this.
            ConflictError: the team would be left without an owner.
        """
        with self._begin() as conn:
            self._lock(conn, actor, team_id)
            allowed = sa.or_(
                sa.literal(user_id) == actor,
                _role_of(actor, team_id, ("owner",)),
                sa.and_(_role_of(actor, team_id, ("admin",)), team_members.c.role != "owner"),
            )
            result = conn.execute(
                sa.delete(team_members).where(
                    team_members.c.team_id == team_id, team_members.c.user_id == user_id, allowed
                )
            )
            if result.rowcount != 1:
                raise self._membership_denied(conn, team_id, user_id, "remove")
            self._keep_an_owner(conn, team_id)

    def _lock(self, conn: Any, actor: str, team_id: str) -> None:
        # Serializes membership changes of one team (PostgreSQL row lock; SQLite locks the file),
        # so two owners demoting each other cannot leave it ownerless. Non-members see no team.
        row = conn.execute(
            sa.select(teams.c.id)
            .where(teams.c.id == team_id, teams.c.id.in_(teams_of(actor)))
            .with_for_update()
        ).first()
        if row is None:
            raise not_found("team", team_id)

    def _membership_denied(self, conn: Any, team_id: str, user_id: str, verb: str) -> Exception:
        target = conn.execute(
            sa.select(team_members.c.role).where(
                team_members.c.team_id == team_id, team_members.c.user_id == user_id
            )
        ).scalar()
        if target is None:
            return not_found("member", user_id)
        return AccessDenied(
            f"your role in team {team_id} does not allow you to {verb} a {target}",
            remediation="owners manage everyone; admins manage members and admins",
        )

    def _keep_an_owner(self, conn: Any, team_id: str) -> None:
        owners = conn.execute(
            sa.select(sa.func.count())
            .select_from(team_members)
            .where(team_members.c.team_id == team_id, team_members.c.role == "owner")
        ).scalar()
        if not owners:
            raise ConflictError(
                f"team {team_id} would have no owner", remediation="make another member an owner first"
            )
