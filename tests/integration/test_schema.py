"""A database built by the migrations equals one built from schema.sql."""

import json
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from asyncpg.types import ServerVersion

from journey_engine.db import MIN_SERVER_MAJOR, SchemaTooNew, ServerTooOld, migrate, schema_version
from journey_engine.sql import LATEST_VERSION
from tests.helpers import strict

CATALOG = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default, ordinal_position
        FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2""",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "functions": """
        SELECT proname, pg_get_functiondef(oid) FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace ORDER BY 1""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
        WHERE NOT tgisinternal ORDER BY 1, 2""",
    "sequences": "SELECT sequence_name, data_type FROM information_schema.sequences ORDER BY 1",
    "storage": """
        SELECT relname, reloptions FROM pg_class
        WHERE relnamespace = 'public'::regnamespace AND reloptions IS NOT NULL ORDER BY 1""",
    "versions": "SELECT version FROM schema_version ORDER BY 1",
}


async def _catalog(dsn: str) -> dict[str, list[tuple[object, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in CATALOG.items()}
    finally:
        await conn.close()


async def _migrated(dsn: str, *, fresh_from_schema: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, fresh_from_schema=fresh_from_schema)
    finally:
        await conn.close()


async def test_migrations_build_the_same_schema_as_schema_sql(
    make_database: Callable[..., Awaitable[str]],
) -> None:
    from_schema, from_migrations = await make_database(), await make_database()
    await _migrated(from_schema, fresh_from_schema=True)
    await _migrated(from_migrations, fresh_from_schema=False)
    built_from_schema = await _catalog(from_schema)
    assert built_from_schema["versions"] == [(v,) for v in range(1, LATEST_VERSION + 1)]
    assert built_from_schema == await _catalog(from_migrations)


async def test_migrate_twice_changes_nothing(db: asyncpg.Connection) -> None:
    assert await migrate(db) == []
    assert await schema_version(db) == LATEST_VERSION


async def test_every_table_carries_the_workspace_id_in_its_key(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        """
        SELECT c.conrelid::regclass::text AS table_name,
               array_agg(a.attname::text ORDER BY a.attnum) AS columns
        FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.contype = 'p' AND c.connamespace = 'public'::regnamespace
        GROUP BY 1"""
    )
    keys = {row["table_name"]: row["columns"] for row in rows}
    assert "workspaces" in keys
    for table, columns in keys.items():
        if table != "schema_version":
            assert "workspace_id" in columns, table


async def test_engine_refuses_a_database_newer_than_itself(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", LATEST_VERSION + 1)
        with pytest.raises(SchemaTooNew, match="newer than this engine"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_engine_refuses_a_server_older_than_postgresql_14(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        assert conn.get_server_version().major >= MIN_SERVER_MAJOR  # the servers the tests run on
        old = ServerVersion(13, 14, 0, "final", 0)
        monkeypatch.setattr(type(conn), "get_server_version", lambda self: old)
        with pytest.raises(ServerTooOld, match=r"PostgreSQL 14 or later is needed; the server is 13\.14"):
            await migrate(conn)
    finally:
        await conn.close()


async def _migrated_to(conn: asyncpg.Connection, version: int) -> None:
    """An empty schema brought to `version` by the migrations, as an engine of that version left it."""
    from journey_engine.sql import migrations

    await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    for number, _, sql in migrations()[:version]:
        await conn.execute(sql)
        await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", number)


async def test_upgrading_a_database_with_events_gives_each_identity_a_person(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        await _migrated_to(conn, 2)
        await conn.execute(
            "INSERT INTO workspaces (workspace_id, name) VALUES ('aaaaaaaaaaaaaaaaaaaaaaaa', 'w')"
        )
        await conn.execute(
            """
            INSERT INTO events (workspace_id, id, source, specversion, type, time, identity, identity_raw,
                                identity_type, content_hash)
            SELECT 'aaaaaaaaaaaaaaaaaaaaaaaa', 'e' || i, 's', '1.0', 't', now(), 'id-' || (i % 3), 'id',
                   'customerId', sha256(i::text::bytea)
            FROM generate_series(1, 9) AS i"""
        )
        await migrate(conn)
        rows = await conn.fetch("SELECT alias, alias_type, person_id FROM aliases ORDER BY alias")
        assert [(r["alias"], r["alias_type"]) for r in rows] == [(f"id-{i}", "customerId") for i in range(3)]
        assert len({r["person_id"] for r in rows}) == 3
        assert await conn.fetchval("SELECT count(*) FROM persons") == 3
    finally:
        await conn.close()


async def test_upgrading_keeps_stored_profile_values_in_the_compact_form(fresh_database: str) -> None:
    """0010 turns each attribute's object into `[value, events, error(, seqs)]` in a json column, which
    `compute.from_json` reads; a row marked for computation stays empty, and so does one holding
    something else (never written by the engine)."""
    before = [
        {"value": 2, "events": 2, "error": None},
        {"value": ["b", "a"], "events": 3, "error": "1 event(s) skipped: ...", "seqs": [9, 7]},
        {"value": {"nonfinite": "inf"}, "events": 2, "error": None},
        {"value": None, "events": 0, "error": None},
    ]
    conn = await asyncpg.connect(fresh_database)
    try:
        await _migrated_to(conn, 9)
        insert = (
            "INSERT INTO profile_values (workspace_id, template_id, person_id, vals, computed_at)"
            " VALUES ('w', 't', $1, $2::text::jsonb, now())"
        )
        await conn.execute(insert, "computed", json.dumps(before))
        await conn.execute(insert, "due", "[]")
        await conn.execute(insert, "odd", '{"value": 1}')
        assert await migrate(conn) == list(range(10, LATEST_VERSION + 1))
        rows = dict(await conn.fetch("SELECT person_id, vals::text FROM profile_values"))
    finally:
        await conn.close()
    assert strict(json.loads(rows["computed"])) == strict(
        [
            [2, 2, None],
            [["b", "a"], 3, "1 event(s) skipped: ...", [9, 7]],
            [{"nonfinite": "inf"}, 2, None],
            [None, 0, None],
        ]
    )
    assert json.loads(rows["due"]) == json.loads(rows["odd"]) == []
