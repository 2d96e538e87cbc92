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
    assert ModelRow.select().count() == 7
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
