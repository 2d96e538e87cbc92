-- Migration 2, the audit trail and slots as data, for postgres. Frozen: a later change is a new migration.
-- Old change rows keep their revisions and times, and kinds map to the new ones; what they
-- changed was never recorded. Account ids use COLLATE "C", as in migration 1.
ALTER TABLE "slot" ADD COLUMN "display_name" VARCHAR(200) NOT NULL DEFAULT '';
UPDATE "slot" SET "display_name" = CASE "name" WHEN 'openai_model' THEN 'OpenAI Model' WHEN 'dalle_model' THEN 'DALL-E Model' WHEN 'runware_model' THEN 'Runware Model' WHEN 'anthropic_model' THEN 'Anthropic Model' ELSE "name" END;
ALTER TABLE "slot" ALTER COLUMN "display_name" DROP DEFAULT;
ALTER TABLE "change" ALTER COLUMN "kind" TYPE VARCHAR(32), ADD COLUMN "scope" VARCHAR(16), ADD COLUMN "slot" VARCHAR(64), ADD COLUMN "model_id" BIGINT, ADD COLUMN "actor" VARCHAR(200) NOT NULL DEFAULT '', ADD COLUMN "method" VARCHAR(100) NOT NULL DEFAULT '', ADD COLUMN "request_id" VARCHAR(128) NOT NULL DEFAULT '', ADD COLUMN "reason" TEXT NOT NULL DEFAULT '', ADD COLUMN "time_us" BIGINT, ADD COLUMN "before" TEXT, ADD COLUMN "after" TEXT, ADD COLUMN "reverted_revision" BIGINT;
UPDATE "change" SET "kind" = CASE "kind" WHEN 'global' THEN 'setting' WHEN 'account' THEN 'setting' ELSE "kind" END, "scope" = CASE "kind" WHEN 'global' THEN 'global' WHEN 'account' THEN 'account' WHEN 'import' THEN 'account' END, "actor" = CASE "kind" WHEN 'seed' THEN 'local' ELSE '' END, "time_us" = (EXTRACT(EPOCH FROM "committed_at"::timestamptz) * 1000000)::BIGINT;
ALTER TABLE "change" ALTER COLUMN "time_us" SET NOT NULL, ALTER COLUMN "actor" DROP DEFAULT, ALTER COLUMN "method" DROP DEFAULT, ALTER COLUMN "request_id" DROP DEFAULT, ALTER COLUMN "reason" DROP DEFAULT, DROP COLUMN "committed_at";
CREATE TABLE "change_subject" ("subject" VARCHAR(100) NOT NULL, "revision" BIGINT NOT NULL, PRIMARY KEY ("subject", "revision"));
CREATE TABLE "override_change" ("revision" BIGINT NOT NULL, "account_id" VARCHAR(128) COLLATE "C" NOT NULL, "slot" VARCHAR(64) NOT NULL, "before_model_id" BIGINT, "after_model_id" BIGINT, PRIMARY KEY ("revision", "account_id", "slot"));
CREATE INDEX "override_change_account_id_slot_revision" ON "override_change" ("account_id", "slot", "revision");
DROP INDEX "account_override_model_id";
CREATE INDEX "account_override_model_id_account_id" ON "account_override" ("model_id", "account_id");
