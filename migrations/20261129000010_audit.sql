-- `worker audit` reads as the relay role, which already reads every org's
-- events and the outbox; to tell handled events from missing ones it also
-- reads the processed records of PostgreSQL handlers (runtime state, not
-- tenant data, so no row-level security applies).
GRANT SELECT ON processed_events TO xentri_relay;
