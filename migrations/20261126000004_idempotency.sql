-- Idempotency keys of mutating routes: the first request with a key is
-- answered and its answer kept until the key expires; a replay is answered
-- the same, the key with another request is refused (422), and a second
-- request while the first is in flight is told so (409, see append_events).
CREATE TABLE idempotency_keys (
    org_id          uuid        NOT NULL,
    key             text        NOT NULL,
    -- SHA-256 of method, route and body.
    request_hash    bytea       NOT NULL,
    response_status smallint    NOT NULL,
    -- The answer: the event the request appended (read back to replay it),
    -- or the body itself for an answer that is not an event.
    event_id        uuid,
    response_body   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (org_id, key),
    CONSTRAINT idempotency_keys_response CHECK (response_body IS NOT NULL OR event_id IS NOT NULL)
);

-- The worker's purge deletes expired keys oldest first.
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON idempotency_keys
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
-- The purge sees and deletes expired keys of every org, and nothing else.
CREATE POLICY worker_sees_expired ON idempotency_keys FOR SELECT TO xentri_worker USING (expires_at <= now());
CREATE POLICY worker_purges_expired ON idempotency_keys FOR DELETE TO xentri_worker USING (expires_at <= now());

REVOKE ALL ON idempotency_keys FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON idempotency_keys TO xentri_api;
GRANT SELECT, DELETE ON idempotency_keys TO xentri_worker;
