-- What a completed job warns about (a LoRA whose weights matched nothing, an embedding made
-- for another model family): a JSON list of strings, shown in its status as in its event.
ALTER TABLE jobs ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]';
