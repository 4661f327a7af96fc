"""Changes to persons through the person APIs: one request, one transaction, one profile hook.

:func:`edit` runs a request's work on an :class:`Edit` inside one transaction (retried on a deadlock) and
ends it by calling :func:`journey_engine.pipeline.on_persons_changed` once, with every person whose aliases
changed, so their profile values are recomputed from their events in the same transaction.

Rules:

- An alias belongs to at most one person. Adding one that another person owns is a 400 with JDS's message
  (:data:`OWNED_ELSEWHERE`); adding one the person has, or creating a person with a stored alias, a 409.
- A person keeps at least one alias: a change that would leave it none is refused (delete it instead).
- Removing an alias: one that events were sent under becomes a person of its own, taking its events (as
  if they had just arrived), so every stored event keeps an owner; one without events is deleted.
- A merged-away id names the survivor for reads and edits; delete and erase refuse it (409 naming the
  survivor), since they must name the person they destroy.
- Deleting a person (JDS) removes it, the ids merged into it, its aliases and its identity history; the
  events sent under its aliases stay, keyed by alias (JDS keeps events by identity): the feed still
  answers for those identities, and the next event under one starts a new person that owns them.

Locking takes alias rows before person rows, each sorted: the order of ingest too, which locks every
alias of the persons its links may change before the first link. An edit locks every alias of the persons
it changes, then the persons; if one was merged away or gained an alias in between, the transaction
starts over, so no change misses an alias that joined meanwhile (which would leave it with a retired
person). A deadlock that remains is retried twice, then answered 409 ("retry the request").
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from journey_engine import identity, persons
from journey_engine.errors import BadRequest, Conflict, NotFound, Problem
from journey_engine.identities import IdentityType, normalise
from journey_engine.identity import Actor, new_person_id
from journey_engine.persons import is_person_id, merged_into
from journey_engine.pipeline import on_persons_changed
from journey_engine.sql import QUERIES

OWNED_ELSEWHERE = "Alias to be added already exists to some other Person"
ALREADY_OWN = "Alias to be added already exists for this Person"
_ATTEMPTS = 3  # deadlocks met before giving up
_TRIES = 8  # runs of one edit in all
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Named:
    """An alias in its stored form, its type, and the request field it came from (for error messages)."""

    alias: str
    kind: IdentityType
    field: str


def typed_aliases(lists: Mapping[IdentityType, Sequence[str]], region: str) -> list[Named]:
    """Normalise typed alias lists (``{phone: [...]}``); a value given twice (in any spelling) counts once."""
    out: dict[str, Named] = {}
    for kind, values in lists.items():
        for n, value in enumerate(values):
            field = f"{kind.value}[{n}]"
            alias = normalise(kind, value, region, field)
            out.setdefault(alias, Named(alias, kind, field))
    return list(out.values())


class Edit:
    """The changes of one request, on a connection inside its transaction."""

    def __init__(self, conn: asyncpg.Connection, workspace_id: str, actor: Actor) -> None:
        self.conn = conn
        self.workspace_id = workspace_id
        self.actor = actor
        self.touched: set[str] = set()

    async def lock(self, person_ids: Sequence[str], *, follow_merges: bool = True) -> dict[str, str]:
        """Lock the persons `person_ids` name now, their aliases first; {id asked: live id}. If one is
        merged away or gains an alias before it is locked, the transaction starts over (:func:`edit`)."""
        rows = await self.conn.fetch(
            QUERIES["current_persons"], self.workspace_id, [p for p in person_ids if is_person_id(p)]
        )
        current = {r["person_id"]: r["current_id"] for r in rows}
        for asked in person_ids:
            if asked not in current:
                raise NotFound(f"person '{asked[:64]}' not found", [Problem("personId", "no such person")])
            if not follow_merges and current[asked] != asked:
                raise Conflict(
                    f"person '{asked}' was merged into '{current[asked]}'",
                    [Problem("personId", f"name the person itself: '{current[asked]}'")],
                )
        live = sorted(set(current.values()))
        held = await self.conn.fetch(QUERIES["lock_person_aliases"], self.workspace_id, live)
        if len(await self.conn.fetch(QUERIES["lock_persons"], self.workspace_id, live)) != len(live):
            raise _StartOver  # merged away meanwhile
        # The persons are held now, so their aliases stay theirs; read (not lock) them to see if one moved in.
        if await self.conn.fetchval(QUERIES["count_person_aliases"], self.workspace_id, live) != len(held):
            raise _StartOver  # an alias moved in before the persons were locked: it was not locked first
        return current

    async def person(self, person_id: str, *, follow_merges: bool = True) -> str:
        return (await self.lock([person_id], follow_merges=follow_merges))[person_id]

    async def create(self, first: str | None, last: str | None, aliases: Sequence[Named]) -> str:
        if not aliases:
            raise BadRequest("A person needs an alias", [Problem("body", "give at least one alias")])
        person_id = new_person_id()
        await self.conn.execute(QUERIES["insert_persons"], [self.workspace_id], [person_id], [first], [last])
        claimed = {r["alias"] for r in await self._claim(person_id, aliases)}
        taken = [a for a in aliases if a.alias not in claimed]
        if taken:
            owners = await self._owners([a.alias for a in taken])
            raise Conflict(
                "Person already exists",
                [
                    Problem(a.field, f"'{a.alias}' belongs to person '{owners.get(a.alias, '?')}'")
                    for a in taken
                ],
            )
        await self._log(person_id, None, "created", [a.alias for a in aliases])
        self.touched.add(person_id)
        return person_id

    async def add(self, person_id: str, aliases: Sequence[Named], *, skip_own: bool = False) -> None:
        """Give `person_id` (locked) these aliases; `skip_own`: ones it has already are no error."""
        owners = await self._owners([a.alias for a in aliases])
        for named in aliases:
            owner = owners.get(named.alias)
            if owner is not None and owner != person_id:
                raise BadRequest(
                    OWNED_ELSEWHERE, [Problem(named.field, f"'{named.alias}' belongs to person '{owner}'")]
                )
            if owner == person_id and not skip_own:
                raise Conflict(
                    ALREADY_OWN, [Problem(named.field, f"'{named.alias}' is already an alias of this person")]
                )
        new = [a for a in aliases if a.alias not in owners]
        claimed = {r["alias"] for r in await self._claim(person_id, new)}
        for named in new:
            if named.alias not in claimed:  # another transaction created it meanwhile
                raise BadRequest(
                    OWNED_ELSEWHERE, [Problem(named.field, f"'{named.alias}' belongs to another person")]
                )
        if new:
            await self._log(person_id, None, "alias_added", [a.alias for a in new])
            self.touched.add(person_id)

    async def pick(self, person_id: str, asked: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
        """For each (field, spellings) asked, the spelling `person_id` owns; 400 naming the field if none."""
        owners = await self._owners([s for _, spellings in asked for s in spellings])
        picked: list[str] = []
        for field, spellings in asked:
            own = [s for s in spellings if owners.get(s) == person_id]
            if not own:
                raise BadRequest(
                    "Alias not owned by this person",
                    [Problem(field, f"'{spellings[0]}' is not an alias of this person")],
                )
            picked.append(own[0])
        return list(dict.fromkeys(picked))

    async def remove(self, person_id: str, aliases: Sequence[str]) -> None:
        """Take `aliases` (owned by `person_id`, locked) from it: see the module's rules."""
        if not aliases:
            return
        with_events = {
            r["alias"]
            for r in await self.conn.fetch(QUERIES["aliases_with_events"], self.workspace_id, list(aliases))
        }
        for alias in sorted(with_events):
            split = new_person_id()
            await self.conn.execute(QUERIES["insert_persons"], [self.workspace_id], [split], [None], [None])
            await self.conn.execute(QUERIES["split_aliases"], self.workspace_id, [alias], split)
            await self._log(person_id, split, "alias_removed", [alias])
            await self._log(split, person_id, "created", [alias])
            self.touched.add(split)
        deleted = [a for a in aliases if a not in with_events]
        if deleted:
            await self.conn.execute(QUERIES["delete_aliases"], self.workspace_id, person_id, deleted)
            await self._log(person_id, None, "alias_removed", deleted)
        self.touched.add(person_id)

    async def rename(self, person_id: str, names: Mapping[str, str | None]) -> None:
        """Set the names given (keys ``firstName``/``lastName``; None clears one)."""
        if not names:
            return
        first, last = "firstName" in names, "lastName" in names
        await self.conn.execute(
            QUERIES["rename_person"], self.workspace_id, person_id, first, names.get("firstName"), last,
            names.get("lastName"),
        )  # fmt: skip
        await self._log(person_id, None, "renamed", [])

    async def merge(self, primary: str, others: Iterable[str]) -> str:
        """Merge `others` into `primary` (ids following earlier merges); the primary's live id."""
        others = list(others)
        live = await self.lock([primary, *others])
        survivor = live[primary]
        merged = sorted({live[o] for o in others} - {survivor})
        if merged:
            await identity.merge(self.conn, self.workspace_id, survivor, merged, self.actor)
            await self.conn.execute(QUERIES["touch_persons"], self.workspace_id, [survivor])
            self.touched.update([survivor, *merged])
        return survivor

    async def unmerge(self, person_id: str, asked: Sequence[tuple[str, Sequence[str]]]) -> str:
        """Split the aliases asked (with their events) out of `person_id` into a new person; its id."""
        live = await self.person(person_id)
        split = await identity.unmerge(
            self.conn, self.workspace_id, live, await self.pick(live, asked), self.actor
        )
        self.touched.update([live, split])
        return split

    async def delete(self, person_id: str) -> None:
        live = await self.person(person_id, follow_merges=False)
        retired = await merged_into(self.conn, self.workspace_id, live)
        await self.conn.execute(QUERIES["erase_identity_changes"], self.workspace_id, [live, *retired], [])
        await self.conn.execute(QUERIES["delete_person"], self.workspace_id, live)
        self.touched.update([live, *retired])  # their values go in `finish` (store.refresh)

    async def upsert(
        self, names: Mapping[str, str | None], aliases: Sequence[Named], *, override: bool
    ) -> str:
        """JDS merge-identities: the persons owning any of `aliases` become one (the oldest survives) and
        gain the others; none: a new person. `override`: aliases not given are removed."""
        given = [a.alias for a in aliases]
        owners = sorted(set((await self._owners(given)).values()))
        if not owners:
            return await self.create(names.get("firstName"), names.get("lastName"), aliases)
        live = sorted(set((await self.lock(owners)).values()))
        if not set((await self._owners(given)).values()) <= set(live):
            raise _StartOver  # an alias changed owner before the owners were locked
        found = await persons.fetch(self.conn, self.workspace_id, live)
        oldest = min(found, key=lambda p: (p.created_at, p.person_id)).person_id
        person_id = await self.merge(oldest, owners)
        await self.add(person_id, aliases, skip_own=True)
        await self.rename(person_id, names)
        if override:
            kept = {a.alias for a in aliases}
            current = await self.conn.fetch(QUERIES["person_aliases"], self.workspace_id, person_id)
            await self.remove(person_id, [r["alias"] for r in current if r["alias"] not in kept])
        return person_id

    async def finish(self) -> None:
        """Check that every changed person kept an alias, then run the profile hook once."""
        if not self.touched:
            return
        touched = sorted(self.touched)
        bare = await self.conn.fetch(QUERIES["persons_without_aliases"], self.workspace_id, touched)
        if bare:
            raise BadRequest(
                "A person must keep at least one alias",
                [
                    Problem(
                        "aliases",
                        f"person '{bare[0]['person_id']}' would have none; delete the person instead",
                    )
                ],
            )
        await self.conn.execute(QUERIES["touch_persons"], self.workspace_id, touched)
        await on_persons_changed(self.conn, self.workspace_id, touched)

    async def _owners(self, aliases: Sequence[str]) -> dict[str, str]:
        """{alias: person} of the stored ones. Not locked: an alias of a person this edit has locked keeps
        its owner; any other may change owner, and a claim of a new one conflicts with a concurrent one."""
        return await identity.persons_of(self.conn, self.workspace_id, aliases)

    async def _claim(self, person_id: str, aliases: Sequence[Named]) -> list[asyncpg.Record]:
        n = len(aliases)
        rows: list[asyncpg.Record] = await self.conn.fetch(
            QUERIES["claim_aliases"], [self.workspace_id] * n, [a.alias for a in aliases],
            [a.kind.value for a in aliases], [person_id] * n,
        )  # fmt: skip
        return rows

    async def _log(self, person_id: str, other: str | None, kind: str, aliases: Sequence[str]) -> None:
        await self.conn.execute(
            QUERIES["log_identity_change"], self.workspace_id, person_id, other, kind, list(aliases),
            self.actor.key_id, self.actor.event_seq,
        )  # fmt: skip


async def edit(
    pool: asyncpg.Pool, workspace_id: str, actor: Actor, work: Callable[[Edit], Awaitable[T]]
) -> T:
    """Run `work` in one transaction, then the profile hook; retried when it meets a deadlock (twice at
    most) or when the persons it locks change under it."""
    deadlocks = 0
    for _ in range(_TRIES):
        try:
            async with pool.acquire() as conn, conn.transaction():
                changes = Edit(conn, workspace_id, actor)
                result = await work(changes)
                await changes.finish()
                return result
        except _StartOver:
            continue
        except asyncpg.DeadlockDetectedError:
            deadlocks += 1
            if deadlocks == _ATTEMPTS:
                break
            await asyncio.sleep(random.uniform(0.01, 0.05) * deadlocks)  # let the other side finish first
    raise Conflict("Concurrent changes to the same persons; retry the request")


class _StartOver(Exception):
    """The persons an edit locks changed before it held them: roll back and run it again."""
