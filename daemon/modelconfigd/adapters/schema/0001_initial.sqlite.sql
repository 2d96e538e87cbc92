-- Migration 1, the initial schema, for sqlite. Frozen: a later change is a new migration.
CREATE TABLE IF NOT EXISTS "state" ("id" INTEGER NOT NULL PRIMARY KEY, "revision" INTEGER NOT NULL, "global_revision" INTEGER NOT NULL, "next_model_id" INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS "model" ("id" INTEGER NOT NULL PRIMARY KEY, "model_name" VARCHAR(100) NOT NULL, "display_name" VARCHAR(200) NOT NULL, "provider" VARCHAR(40) NOT NULL, "model_type" VARCHAR(10) NOT NULL, "is_active" INTEGER NOT NULL, "input_price_per_1m_tokens" TEXT, "output_price_per_1m_tokens" TEXT, "price_per_image" TEXT, "context_window" INTEGER NOT NULL, "max_output_tokens" INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS "model_model_name" ON "model" ("model_name");
CREATE TABLE IF NOT EXISTS "model_alias" ("alias" VARCHAR(100) NOT NULL PRIMARY KEY, "model_id" INTEGER NOT NULL, "position" INTEGER NOT NULL, FOREIGN KEY ("model_id") REFERENCES "model" ("id") ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS "model_alias_model_id" ON "model_alias" ("model_id");
CREATE TABLE IF NOT EXISTS "slot" ("name" VARCHAR(64) NOT NULL PRIMARY KEY, "required_provider" VARCHAR(40) NOT NULL, "required_model_type" VARCHAR(10) NOT NULL, "default_model_id" INTEGER NOT NULL, "position" INTEGER NOT NULL, FOREIGN KEY ("default_model_id") REFERENCES "model" ("id") ON DELETE RESTRICT);
CREATE INDEX IF NOT EXISTS "slot_default_model_id" ON "slot" ("default_model_id");
CREATE TABLE IF NOT EXISTS "global_setting" ("slot_id" VARCHAR(64) NOT NULL PRIMARY KEY, "model_id" INTEGER NOT NULL, FOREIGN KEY ("slot_id") REFERENCES "slot" ("name") ON DELETE RESTRICT, FOREIGN KEY ("model_id") REFERENCES "model" ("id") ON DELETE RESTRICT);
CREATE INDEX IF NOT EXISTS "global_setting_model_id" ON "global_setting" ("model_id");
CREATE TABLE IF NOT EXISTS "account" ("account_id" VARCHAR(128) NOT NULL PRIMARY KEY, "revision" INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS "account_revision" ON "account" ("revision");
CREATE TABLE IF NOT EXISTS "account_override" ("account_id" VARCHAR(128) NOT NULL, "slot" VARCHAR(64) NOT NULL, "model_id" INTEGER NOT NULL, PRIMARY KEY ("account_id", "slot"), FOREIGN KEY ("model_id") REFERENCES "model" ("id") ON DELETE RESTRICT);
CREATE INDEX IF NOT EXISTS "account_override_model_id" ON "account_override" ("model_id");
CREATE TABLE IF NOT EXISTS "change" ("revision" INTEGER NOT NULL PRIMARY KEY, "kind" VARCHAR(16) NOT NULL, "account_id" VARCHAR(128), "committed_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP);
