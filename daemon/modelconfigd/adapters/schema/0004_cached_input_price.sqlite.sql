-- Migration 4, for sqlite. Frozen: a later change is a new migration.
-- Prompt caching: a price per 1M cached input tokens (exact decimal text; NULL: none).
ALTER TABLE "model" ADD COLUMN "cached_input_price_per_1m_tokens" TEXT;
