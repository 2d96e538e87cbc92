"""Migrations on the real engines: the schema they build is the one tables.py describes."""

from __future__ import annotations

import pytest
from peewee import IntegrityError

from modelconfigd.adapters import migrations
from modelconfigd.adapters.database import open_database
from modelconfigd.adapters.store import PeeweeStore
from modelconfigd.adapters.tables import ALL_TABLES, ModelRow, SchemaVersion, StateRow
from modelconfigd.domain import changes
from modelconfigd.domain.changes import Origin


@pytest.fixture
def db(database_url):
    database = open_database(database_url)
    migrations.migrate(database)
    yield database
    database.close()


def test_migrated_columns_match_the_table_definitions(db):
    for table in ALL_TABLES:
        name = table._meta.table_name
        columns = {c.name for c in db.get_columns(name)}
        expected = {f.column_name for f in table._meta.sorted_fields}
        assert columns == expected, name
        indexed = {tuple(i.columns) for i in db.get_indexes(name)}
        for field in table._meta.sorted_fields:
            if field.index or field.unique:
                assert (field.column_name,) in indexed, f"{name}.{field.column_name} index"


def test_migrating_again_changes_nothing(db):
    state = StateRow.get_by_id(1)
    assert migrations.migrate(db) == migrations.SCHEMA_VERSION
    assert StateRow.get_by_id(1).revision == state.revision
    assert ModelRow.select().count() == len(migrations.load_seed()["models"])
    assert [v.version for v in SchemaVersion.select()] == [m.version for m in migrations.MIGRATIONS]


def test_a_newer_schema_is_refused(db):
    SchemaVersion.create(version=migrations.SCHEMA_VERSION + 1, name="from the future")
    with pytest.raises(RuntimeError, match="newer"):
        migrations.migrate(db)


def test_a_write_unit_without_commit_rolls_back(db):
    store = PeeweeStore(db)
    with store.write(Origin()) as uow:
        model = uow.models.get(2)
        uow.models.delete(2)
        uow.overrides.set("acme", "openai_model", 1)
        assert changes.model_deleted(model)  # described, never committed
    assert ModelRow.get_or_none(ModelRow.id == 2) is not None
    assert StateRow.get_by_id(1).revision == 1
    with store.read() as unit:
        assert unit.overrides.get("acme", "openai_model") is None
        assert list(unit.overrides.history(2)) == []


def test_the_database_refuses_deleting_a_referenced_model(db):
    with pytest.raises(IntegrityError), db.atomic():
        ModelRow.delete().where(ModelRow.id == 1).execute()


def test_migrated_composite_indexes_match_the_table_definitions(db):
    for table in ALL_TABLES:
        name = table._meta.table_name
        indexed = {tuple(i.columns) for i in db.get_indexes(name)}
        for fields, _unique in table._meta.indexes:
            columns = tuple(table._meta.fields[f].column_name for f in fields)
            assert columns in indexed, f"{name}{columns} index"


def _schema_1_database(url: str):
    """A database as schema 1 left it, with a change of every old kind."""
    database = open_database(url)
    database.connect()
    migrations.MIGRATIONS[0].apply(database)
    statements = [
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        "INSERT INTO schema_version (version, name) VALUES (1, 'initial schema')",
        "INSERT INTO state VALUES (1, 5, 3, 3)",
        "INSERT INTO model VALUES (1, 'gpt-4o-mini', 'GPT-4o Mini', 'openai', 'text', true,"
        " '0.15', '0.60', NULL, 128000, 16384)",
        "INSERT INTO model VALUES (2, 'gpt-3.5-turbo', 'GPT-3.5 Turbo', 'openai', 'text', true,"
        " '0.50', '1.50', NULL, 16385, 4096)",
        "INSERT INTO slot VALUES ('openai_model', 'openai', 'text', 1, 0)",
        "INSERT INTO slot VALUES ('google_model', 'google', 'text', 1, 1)",
        "INSERT INTO global_setting VALUES ('openai_model', 2)",
        "INSERT INTO account VALUES ('acme', 4)",
        "INSERT INTO account_override VALUES ('acme', 'openai_model', 2)",
        "INSERT INTO change (revision, kind, account_id, committed_at) VALUES"
        " (1, 'seed', NULL, '2026-11-01 10:00:00'),"
        " (2, 'catalog', NULL, '2026-11-01 10:01:00'),"
        " (3, 'global', NULL, '2026-11-01 10:02:00'),"
        " (4, 'account', 'acme', '2026-11-01 10:03:00'),"
        " (5, 'import', NULL, '2026-11-01 10:04:00')",
    ]
    with database.atomic():
        for statement in statements:
            database.execute_sql(statement)
    return database


def test_migration_2_keeps_old_changes_readable_and_not_revertible(database_url):
    database = _schema_1_database(database_url)
    try:
        assert migrations.migrate(database) == migrations.SCHEMA_VERSION
        store = PeeweeStore(database)
        with store.read() as unit:
            old = {c.revision: c for c in unit.changes.page(changes.ChangeFilter(), 0, 10)}
            catalog = unit.catalog()
            assert unit.overrides.get("acme", "openai_model") == 2
        assert {r: (c.kind.value, c.scope and c.scope.value) for r, c in old.items()} == {
            1: ("seed", None),
            2: ("catalog", None),
            3: ("setting", "global"),
            4: ("setting", "account"),
            5: ("import", "account"),
        }
        assert old[4].account_id == "acme"
        assert (old[1].origin.actor, old[2].origin.actor) == ("local", "")
        assert (old[3].time - old[2].time).total_seconds() == 60  # times kept, as UTC
        assert all(c.before is None and c.after is None for c in old.values())
        assert catalog.slots["openai_model"].display_name == "OpenAI Model"
        assert catalog.slots["google_model"].display_name == "google_model"
        with store.write(Origin()) as uow:  # a write after the migration records normally
            uow.overrides.set("acme", "openai_model", 1)
            recorded = uow.commit(changes.setting_changed(
                changes.Scope.ACCOUNT, "openai_model", "acme", 2, 1))
        assert recorded.revision == 6
    finally:
        database.close()
