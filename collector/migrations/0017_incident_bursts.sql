-- Intermittent faults: failures of an incident's cause that come back within the merge gap
-- (ingest::grouping::MERGE_GAP_MS) reopen it; `bursts` counts how often it began.
--
-- Never edit this file once committed: add 0018_*.sql.

ALTER TABLE incidents ADD COLUMN bursts INTEGER NOT NULL DEFAULT 1;
