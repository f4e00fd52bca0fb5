-- The services' login role, and what keeps system_events append-only.
--
-- xentri_service is the role the api and the worker log in as (database.url).
-- It is not a superuser, has no BYPASSRLS, creates nothing and owns nothing,
-- so row-level security binds it; each transaction switches from it to
-- xentri_api, xentri_relay or xentri_worker (set_config('role', …, true)),
-- which it is a member of. It inherits their privileges because the api calls
-- append_events and list_events, granted to xentri_api, before they switch.
-- Migrations run as the tables' owner (database.migrate_url); the api and the
-- worker refuse to run on a login that is a superuser, has BYPASSRLS or owns
-- objects here, or when a service role can become one (xentri_core::roles).
--
-- No password is set here: production sets one out of band
-- (ALTER ROLE xentri_service PASSWORD '…'); local clusters trust 127.0.0.1.
--
-- Roles are cluster-wide while databases (and test databases) are many, so
-- creating the role and granting its memberships is idempotent and tolerates
-- another database doing the same at the same moment.
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

-- Migration 2 calls system_events "append-only for every role, owner and
-- superuser included". That overstates it. What protects the log:
--   * grants: no role the services use holds UPDATE, DELETE, TRUNCATE or
--     TRIGGER on it (made explicit below), and none owns it;
--   * the triggers system_events_no_update_delete and system_events_no_truncate,
--     which refuse UPDATE, DELETE and TRUNCATE from any role, the owner
--     included, while they are enabled.
-- What does not: the owner can disable the triggers (ALTER TABLE … DISABLE
-- TRIGGER) or drop the table, and a superuser can do anything, including
-- skipping triggers with session_replication_role = replica. Hence the owner's
-- login is for migrations only, and the services never log in as a superuser.
REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON system_events
    FROM PUBLIC, xentri_api, xentri_relay, xentri_worker, xentri_service;

COMMENT ON TABLE system_events IS
    'Append-only for the services: no service role holds UPDATE, DELETE, TRUNCATE or TRIGGER, and triggers '
    'refuse UPDATE, DELETE and TRUNCATE from every role while enabled. Not protected from the owner (who can '
    'disable the triggers or drop the table) or a superuser.';
COMMENT ON TRIGGER system_events_no_update_delete ON system_events IS
    'Refuses UPDATE and DELETE from every role, owner included; the owner can disable it, a superuser can skip it.';
COMMENT ON TRIGGER system_events_no_truncate ON system_events IS
    'Refuses TRUNCATE from every role, owner included; the owner can disable it, a superuser can skip it.';
