-- The roles the services run as.
--
--   xentri_service  the login of the api and the worker (database.url). Not a
--                   superuser, no BYPASSRLS, owner of nothing, so row-level
--                   security binds it. A member of the three roles below; each
--                   transaction switches to one of them with
--                   set_config('role', …, true).
--   xentri_api      the api: one org per transaction (app.org_id).
--   xentri_relay    the worker's relay and `worker audit`: read every org.
--   xentri_worker   the worker's handlers and jobs: one org per transaction.
--
-- Migrations run as the tables' owner (database.migrate_url). The api and the
-- worker refuse a login that is a superuser, has BYPASSRLS or owns objects
-- here, and a service role that can become one (xentri_core::roles). No
-- password is set here: production sets one out of band
-- (ALTER ROLE xentri_service PASSWORD '…'); local clusters trust 127.0.0.1.
--
-- Roles belong to the cluster while databases (and test databases) are many:
-- each statement is idempotent and tolerates another database running it at
-- the same moment.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['xentri_api', 'xentri_relay', 'xentri_worker'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', role_name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END
$$;

DO $$
BEGIN
    CREATE ROLE xentri_service LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

DO $$
BEGIN
    GRANT xentri_api, xentri_relay, xentri_worker TO xentri_service;
EXCEPTION WHEN unique_violation THEN
    NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO xentri_api, xentri_relay, xentri_worker;
