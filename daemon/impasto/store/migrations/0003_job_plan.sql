-- The resolved plan of each job (every default filled in, ids and names only) beside the
-- public request as it was sent. NULL on jobs queued before this migration.
ALTER TABLE jobs ADD COLUMN plan TEXT;
