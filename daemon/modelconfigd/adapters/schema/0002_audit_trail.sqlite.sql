-- Migration 2, the audit trail and slots as data, for sqlite. Frozen: a later change is a new migration.
-- The change table is rebuilt (SQLite cannot drop a column everywhere); its old rows keep their
-- revisions and times, and kinds map to the new ones; what they changed was never recorded.
ALTER TABLE "slot" ADD COLUMN "display_name" VARCHAR(200) NOT NULL DEFAULT '';
UPDATE "slot" SET "display_name" = CASE "name" WHEN 'openai_model' THEN 'OpenAI Model' WHEN 'dalle_model' THEN 'DALL-E Model' WHEN 'runware_model' THEN 'Runware Model' WHEN 'anthropic_model' THEN 'Anthropic Model' ELSE "name" END;
CREATE TABLE "change_v2" ("revision" INTEGER NOT NULL PRIMARY KEY, "kind" VARCHAR(32) NOT NULL, "scope" VARCHAR(16), "slot" VARCHAR(64), "account_id" VARCHAR(128), "model_id" INTEGER, "actor" VARCHAR(200) NOT NULL, "method" VARCHAR(100) NOT NULL, "request_id" VARCHAR(128) NOT NULL, "reason" TEXT NOT NULL, "time_us" INTEGER NOT NULL, "before" TEXT, "after" TEXT, "reverted_revision" INTEGER);
INSERT INTO "change_v2" ("revision", "kind", "scope", "account_id", "actor", "method", "request_id", "reason", "time_us") SELECT "revision", CASE "kind" WHEN 'global' THEN 'setting' WHEN 'account' THEN 'setting' ELSE "kind" END, CASE "kind" WHEN 'global' THEN 'global' WHEN 'account' THEN 'account' WHEN 'import' THEN 'account' END, "account_id", CASE "kind" WHEN 'seed' THEN 'local' ELSE '' END, '', '', '', CAST(strftime('%s', "committed_at") AS INTEGER) * 1000000 FROM "change";
DROP TABLE "change";
ALTER TABLE "change_v2" RENAME TO "change";
CREATE TABLE "change_subject" ("subject" VARCHAR(100) NOT NULL, "revision" INTEGER NOT NULL, PRIMARY KEY ("subject", "revision"));
CREATE TABLE "override_change" ("revision" INTEGER NOT NULL, "account_id" VARCHAR(128) NOT NULL, "slot" VARCHAR(64) NOT NULL, "before_model_id" INTEGER, "after_model_id" INTEGER, PRIMARY KEY ("revision", "account_id", "slot"));
CREATE INDEX "override_change_account_id_slot_revision" ON "override_change" ("account_id", "slot", "revision");
DROP INDEX "account_override_model_id";
CREATE INDEX "account_override_model_id_account_id" ON "account_override" ("model_id", "account_id");
