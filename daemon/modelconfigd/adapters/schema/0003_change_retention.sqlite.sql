-- Migration 3, for sqlite. Frozen: a later change is a new migration.
-- Pruning the audit trail deletes by revision: change_subject needs an index on it (its
-- primary key leads with the subject).
CREATE INDEX IF NOT EXISTS "changesubjectrow_revision" ON "change_subject" ("revision");
