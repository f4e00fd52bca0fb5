-- Tenant isolation: forced row-level security on every tenant table, keyed on
-- the transaction-local setting app.org_id. An unset (or reset, hence empty)
-- setting matches no row.

ALTER TABLE system_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE system_events FORCE ROW LEVEL SECURITY;
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;

CREATE POLICY org_isolation ON system_events
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY org_isolation ON outbox
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY org_isolation ON idempotency_keys
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- The relay reads across orgs, and only what it needs: events to publish and
-- the outbox rows it deletes once published.
CREATE POLICY relay_reads_all ON system_events FOR SELECT TO xentri_relay USING (true);
CREATE POLICY relay_reads_all ON outbox FOR SELECT TO xentri_relay USING (true);
CREATE POLICY relay_deletes_published ON outbox FOR DELETE TO xentri_relay USING (true);

GRANT USAGE ON SCHEMA public TO xentri_api, xentri_relay;

GRANT SELECT, INSERT ON system_events TO xentri_api;
GRANT INSERT ON outbox TO xentri_api;
GRANT SELECT, INSERT, UPDATE ON idempotency_keys TO xentri_api;

GRANT SELECT ON system_events TO xentri_relay;
GRANT SELECT, DELETE ON outbox TO xentri_relay;
