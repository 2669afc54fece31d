-- SQLite only (its FTS5 index is filled off the write path from this migration on); PostgreSQL's
-- pg_trgm index is maintained by the table's own writes. Kept so both backends list the same
-- migrations.
SELECT 1;
