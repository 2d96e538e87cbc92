"""The Peewee tables. Foreign keys RESTRICT deletes: the database refuses to orphan a setting."""

from __future__ import annotations

from peewee import (
    SQL,
    BigIntegerField,
    BooleanField,
    CharField,
    CompositeKey,
    DatabaseProxy,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

database = DatabaseProxy()


class Table(Model):
    class Meta:
        database = database
        legacy_table_names = False


class SchemaVersion(Table):
    """One row per applied migration."""

    version = IntegerField(primary_key=True)
    name = CharField(max_length=200)
    applied_at = DateTimeField(constraints=[SQL("DEFAULT CURRENT_TIMESTAMP")])


class StateRow(Table):
    """The single row (id 1) every write locks first: it serializes writers and holds counters."""

    id = IntegerField(primary_key=True)
    revision = BigIntegerField()
    global_revision = BigIntegerField()
    # Ids are allocated here rather than by a sequence so that SQLite and PostgreSQL behave alike:
    # they continue after the seeded ids and are never reused.
    next_model_id = BigIntegerField()

    class Meta:
        table_name = "state"


class ModelRow(Table):
    id = BigIntegerField(primary_key=True)
    model_name = CharField(max_length=100, unique=True)
    display_name = CharField(max_length=200)
    provider = CharField(max_length=40)
    model_type = CharField(max_length=10)
    is_active = BooleanField()
    # Prices are canonical decimal text (NULL: not applicable): exact on both engines, where
    # SQLite would turn a NUMERIC column into a binary float.
    input_price_per_1m_tokens = TextField(null=True)
    cached_input_price_per_1m_tokens = TextField(null=True)
    output_price_per_1m_tokens = TextField(null=True)
    price_per_image = TextField(null=True)
    context_window = IntegerField()
    max_output_tokens = IntegerField()
    # JSON lists of {size, quality, price, checked_on, source_url} and {price, checked_on,
    # source_url}; NULL when empty.
    image_prices = TextField(null=True)
    price_sources = TextField(null=True)
    deprecation_date = TextField(null=True)  # YYYY-MM-DD
    successor_id = BigIntegerField(null=True)

    class Meta:
        table_name = "model"


class AliasRow(Table):
    alias = CharField(max_length=100, primary_key=True)
    model = ForeignKeyField(ModelRow, on_delete="CASCADE", backref="alias_rows")
    position = IntegerField()

    class Meta:
        table_name = "model_alias"


class SlotRow(Table):
    name = CharField(max_length=64, primary_key=True)
    display_name = CharField(max_length=200)
    required_provider = CharField(max_length=40)
    required_model_type = CharField(max_length=10)
    default_model = ForeignKeyField(ModelRow, on_delete="RESTRICT")
    position = IntegerField()

    class Meta:
        table_name = "slot"


class GlobalSettingRow(Table):
    slot = ForeignKeyField(SlotRow, primary_key=True, on_delete="RESTRICT")
    model = ForeignKeyField(ModelRow, on_delete="RESTRICT")

    class Meta:
        table_name = "global_setting"


class AccountRow(Table):
    """An account that has ever had an override; its revision versions its overrides (the etag)."""

    account_id = CharField(max_length=128, primary_key=True)
    # Indexed: a replica catching up loads the accounts whose revision is newer than its own.
    revision = BigIntegerField(index=True)

    class Meta:
        table_name = "account"


class OverrideRow(Table):
    # Only the model is a foreign key: it is what RESTRICT must protect (a model in use cannot be
    # deleted). Accounts and slots are never deleted, and foreign-key checks on them would
    # triple the time of a million-row import on PostgreSQL; the primary key (account_id, slot)
    # serves an account's look-ups.
    account = CharField(max_length=128, column_name="account_id")
    slot = CharField(max_length=64, column_name="slot")
    # Indexed with the account: GetModelUsage pages through a model's accounts in id order.
    model = ForeignKeyField(ModelRow, on_delete="RESTRICT", index=False)

    class Meta:
        table_name = "account_override"
        primary_key = CompositeKey("account", "slot")
        indexes = ((("model", "account"), False),)


class ChangeRow(Table):
    """One row per committed change, in revision order: the audit trail, and how replicas find
    what to reload. `before` and `after` are JSON (NULL: not recorded)."""

    revision = BigIntegerField(primary_key=True)
    kind = CharField(max_length=32)
    scope = CharField(max_length=16, null=True)
    slot = CharField(max_length=64, null=True)
    account_id = CharField(max_length=128, null=True)
    model_id = BigIntegerField(null=True)
    actor = CharField(max_length=200)
    method = CharField(max_length=100)
    request_id = CharField(max_length=128)
    reason = TextField()
    # Microseconds since the Unix epoch (UTC): the same integer on both engines.
    time_us = BigIntegerField()
    before = TextField(null=True)
    after = TextField(null=True)
    reverted_revision = BigIntegerField(null=True)

    class Meta:
        table_name = "change"


class ChangeSubjectRow(Table):
    """Every model (`model:7`) and slot (`slot:openai_model`) a change concerns: what
    ListChanges filters by."""

    subject = CharField(max_length=100)
    # Indexed: pruning the trail deletes by revision.
    revision = BigIntegerField(index=True)

    class Meta:
        table_name = "change_subject"
        primary_key = CompositeKey("subject", "revision")


class OverrideChangeRow(Table):
    """Each override a change wrote, before and after (NULL: no override): what a revert
    restores, and which changes touched an account. No foreign keys: history outlives models."""

    revision = BigIntegerField()
    account = CharField(max_length=128, column_name="account_id")
    slot = CharField(max_length=64)
    before_model_id = BigIntegerField(null=True)
    after_model_id = BigIntegerField(null=True)

    class Meta:
        table_name = "override_change"
        primary_key = CompositeKey("revision", "account", "slot")
        indexes = ((("account", "slot", "revision"), False),)


ALL_TABLES = [
    SchemaVersion,
    StateRow,
    ModelRow,
    AliasRow,
    SlotRow,
    GlobalSettingRow,
    AccountRow,
    OverrideRow,
    ChangeRow,
    ChangeSubjectRow,
    OverrideChangeRow,
]
