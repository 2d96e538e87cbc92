"""Versioned schema migrations and the first-start seed, applied at start under one lock.

Starting twice, or two daemons at once on one database, is safe: the whole run happens in one
transaction that holds the database's write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
advisory lock), so the second daemon waits and then finds nothing left to do.

Each migration is frozen SQL per engine under schema/, so a fresh database passes through every
step exactly as an old one did; a test checks that the result matches `tables.py`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from peewee import Database

from ..domain.changes import ChangeKind
from ..domain.model import Model, ModelType
from ..domain.validation import MODEL_FIELDS, build_model
from .database import ensure_connected, is_postgres
from .repositories import PeeweeModels
from .tables import (
    AliasRow,
    ChangeRow,
    ChangeSubjectRow,
    GlobalSettingRow,
    SchemaVersion,
    SlotRow,
    StateRow,
    database,
)

log = logging.getLogger(__name__)

# Any constant works: it only has to differ from advisory locks other software on the server takes.
_PG_MIGRATION_LOCK = 0x6D6F64656C636667  # "modelcfg"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Database], None]


def _sql_file(name: str) -> Callable[[Database], None]:
    """A migration written as SQL, one file per engine: schema/<name>.{sqlite,postgres}.sql."""

    def apply(db: Database) -> None:
        engine = "postgres" if is_postgres(db) else "sqlite"
        script = resources.files("modelconfigd").joinpath(f"adapters/schema/{name}.{engine}.sql")
        body = "\n".join(
            line for line in script.read_text("utf-8").splitlines() if not line.startswith("--")
        )
        for statement in body.split(";"):
            if statement.strip():
                db.execute_sql(statement)

    return apply


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _sql_file("0001_initial")),
    Migration(2, "audit trail, slot display names", _sql_file("0002_audit_trail")),
    Migration(3, "audit trail retention", _sql_file("0003_change_retention")),
    Migration(4, "cached input prices", _sql_file("0004_cached_input_price")),
    Migration(5, "sourced prices, deprecation and successors", _sql_file("0005_model_lifecycle")),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def migrate(db: Database, seed: dict[str, Any] | None = None) -> int:
    """Apply pending migrations and seed an empty database; returns the schema version."""
    database.initialize(db)
    ensure_connected(db)
    with db.manual_commit():
        db.begin()
        try:
            if is_postgres(db):
                db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_MIGRATION_LOCK,))
            db.create_tables([SchemaVersion], safe=True)
            applied = {row.version for row in SchemaVersion.select(SchemaVersion.version)}
            newer = applied - {m.version for m in MIGRATIONS}
            if newer:
                raise RuntimeError(
                    f"database schema version {max(newer)} is newer than this daemon's "
                    f"{SCHEMA_VERSION}: upgrade the daemon"
                )
            for migration in MIGRATIONS:
                if migration.version not in applied:
                    log.info("applying migration %d: %s", migration.version, migration.name)
                    migration.apply(db)
                    SchemaVersion.create(version=migration.version, name=migration.name)
            if not StateRow.select().exists():
                _seed(seed if seed is not None else load_seed())
            db.commit()
        except BaseException:
            db.rollback()
            raise
    return SCHEMA_VERSION


def load_seed() -> dict[str, Any]:
    """The seed catalog shipped with the daemon (seed/catalog.json)."""
    text = resources.files("modelconfigd").joinpath("seed/catalog.json").read_text("utf-8")
    return json.loads(text)


def seed_model(entry: dict[str, Any]) -> Model:
    """A seed catalog entry as a model, by the rules every written model passes.

    Each price's source is the catalog's `sources` map: a price field, or `image:SIZE:QUALITY`
    for an entry of `image_prices`, to the URL it was checked against on `checked_on`.
    """
    checked_on = entry.get("checked_on", "")
    sources = entry.get("sources", {})
    fields: dict[str, Any] = {
        "display_name": "",
        "is_active": True,
        "context_window": 0,
        "max_output_tokens": 0,
        "aliases": [],
        "deprecation_date": "",
        "successor_id": None,
        **{k: v for k, v in entry.items() if k in MODEL_FIELDS},
    }
    for price in ("input_price_per_1m_tokens", "cached_input_price_per_1m_tokens",
                  "output_price_per_1m_tokens", "price_per_image"):
        fields.setdefault(price, "")
    fields["model_type"] = ModelType(entry["model_type"])
    fields["image_prices"] = [
        {
            "size": p["size"],
            "quality": p["quality"],
            "price": p["price"],
            "checked_on": checked_on if f"image:{p['size']}:{p['quality']}" in sources else "",
            "source_url": sources.get(f"image:{p['size']}:{p['quality']}", ""),
        }
        for p in entry.get("image_prices", [])
    ]
    fields["price_sources"] = [
        {"price": field, "checked_on": checked_on, "source_url": url}
        for field, url in sources.items()
        if not field.startswith("image:")
    ]
    return build_model(entry["id"], fields)


def _seed(seed: dict[str, Any]) -> None:
    ids_by_name: dict[str, int] = {}
    for m in seed["models"]:
        model = seed_model(m)
        PeeweeModels.insert_row(model)
        for position, alias in enumerate(model.aliases):
            AliasRow.insert(alias=alias, model=model.id, position=position).execute()
        ids_by_name[model.model_name] = model.id
    for position, s in enumerate(seed["slots"]):
        SlotRow.insert(
            name=s["name"],
            display_name=s.get("display_name") or s["name"],
            required_provider=s["required_provider"],
            required_model_type=s["required_model_type"],
            default_model=ids_by_name[s["default_model"]],
            position=position,
        ).execute()
    for slot, model_id in seed["global_settings"].items():
        GlobalSettingRow.insert(slot=slot, model=model_id).execute()
    StateRow.insert(
        id=1, revision=1, global_revision=1, next_model_id=max(ids_by_name.values()) + 1
    ).execute()
    ChangeRow.insert(
        revision=1,
        kind=ChangeKind.SEED.value,
        actor="local",
        method="",
        request_id="",
        reason="",
        time_us=time.time_ns() // 1000,
    ).execute()
    subjects = [f"model:{i}" for i in sorted(ids_by_name.values())]
    subjects += [f"slot:{s['name']}" for s in seed["slots"]]
    ChangeSubjectRow.insert_many([{"subject": s, "revision": 1} for s in subjects]).execute()
    log.info("seeded an empty database with %d models", len(ids_by_name))
