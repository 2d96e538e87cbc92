-- Migration 5, for postgres. Frozen: a later change is a new migration.
-- Sourced prices (JSON lists; NULL: none) and the lifecycle: a deprecation date (YYYY-MM-DD
-- text; NULL: none) and a successor model (no foreign key: a deletion is refused by the
-- daemon's rules while a model names it, with a clear error instead of a constraint failure).
ALTER TABLE "model" ADD COLUMN "image_prices" TEXT;
ALTER TABLE "model" ADD COLUMN "price_sources" TEXT;
ALTER TABLE "model" ADD COLUMN "deprecation_date" TEXT;
ALTER TABLE "model" ADD COLUMN "successor_id" BIGINT;
