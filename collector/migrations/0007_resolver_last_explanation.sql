-- Resolver conditions keep the explanation of their latest observation, as host conditions
-- do (0003): a resolver's verdict says more as it goes on (another address, another error),
-- and both tables are then grouped by one piece of code (src/ingest/conditions.rs).
--
-- Never edit this file once committed: add 0008_*.sql.

ALTER TABLE resolver_conditions ADD COLUMN last_explanation TEXT NOT NULL DEFAULT '';
UPDATE resolver_conditions SET last_explanation = explanation;
