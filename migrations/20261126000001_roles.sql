-- Service roles. Roles are cluster-wide while databases (and test databases) are
-- many, so creation is idempotent and tolerates another database creating the
-- same role at the same moment.
--
-- xentri_api:   every api transaction runs as it (SET LOCAL ROLE); no BYPASSRLS,
--               owns no table, so forced row-level security always applies.
-- xentri_relay: the worker's relay; reads across orgs through its own policies.
-- Both are NOLOGIN: the pool's login role switches to them per transaction.
DO $$
BEGIN
    CREATE ROLE xentri_api NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

DO $$
BEGIN
    CREATE ROLE xentri_relay NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
