"""Property: for any interleaving of two users' writes, no read by one returns the other's data."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

WORDS = ["tea", "coffee", "hiking", "alps", "python", "sql", "answers", "short", "music", "cello"]
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
operations = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from(["add", "add_many", "update", "delete", "pref", "skill"]),
        texts,
        st.integers(min_value=0, max_value=50),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_no_read_by_one_user_returns_the_other_users_data(memory, ops):
    run = uuid.uuid4().hex[:8]
    users = {"a": f"a-{run}", "b": f"b-{run}"}
    owned: dict[str, list[str]] = {users["a"]: [], users["b"]: []}
    everything: dict[str, set[str]] = {users["a"]: set(), users["b"]: set()}
    for who, op, text, n in ops:
        user = users[who]
        mine = owned[user]
        if op == "add":
            mine.append(memory.insights.add(f"{who} {text}", user_id=user, metadata={"owner": who}))
        elif op == "add_many":
            mine.extend(memory.insights.add_many([f"{who} {text}", f"{who} {text} {n}"], user_id=user))
        elif op == "update" and mine:
            memory.insights.update(mine[n % len(mine)], user_id=user, text=f"{who} {text} updated")
        elif op == "delete" and mine:
            assert memory.insights.delete(mine.pop(n % len(mine)), user_id=user)
        elif op == "pref":
            memory.preferences.set(user, f"k{n % 3}", {"owner": who, "text": text})
        elif op == "skill" and memory.skills.get(user, f"s{n % 3}") is None:
            memory.skills.create(user, f"s{n % 3}", description=who)

        mine[:] = list(dict.fromkeys(mine))  # dedupe may hand back an id already held
        everything[user].update(mine)
        for reader_key, reader in users.items():
            other_ids = set(everything[users["b" if reader_key == "a" else "a"]])
            for mode in ("hybrid", "vector", "keyword"):
                hits = memory.insights.search(text, user_id=reader, mode=mode, limit=50)
                assert not other_ids & {h.id for h in hits}
                assert all(h.text.startswith(reader_key) for h in hits)
            listed = memory.insights.list(user_id=reader, limit=100)
            assert all(i.user_id == reader and i.text.startswith(reader_key) for i in listed)
            for other_id in other_ids:
                assert memory.insights.get(other_id, user_id=reader) is None
                assert memory.insights.history(other_id, user_id=reader) == []
            assert all(p.value["owner"] == reader_key for p in memory.preferences.list(reader))
            assert all(s.description == reader_key for s in memory.skills.list(reader))
