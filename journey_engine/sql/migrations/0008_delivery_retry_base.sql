-- A redelivered delivery starts a fresh retry schedule: attempts before `retry_base` belong to earlier
-- rounds (the attempt log keeps numbering them all).
ALTER TABLE deliveries ADD COLUMN retry_base integer NOT NULL DEFAULT 0;
