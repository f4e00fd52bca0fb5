-- The immutable event log, its outbox and the idempotency keys of mutating routes.

CREATE TABLE system_events (
    -- Global position. Assigned in the same statement as tx_id, so the commit
    -- horizon below orders them consistently.
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             uuid        NOT NULL UNIQUE,
    org_id         uuid        NOT NULL,
    type           text        NOT NULL
        CONSTRAINT system_events_type_name
        CHECK (type ~ '^xentri(\.[a-z][a-z0-9_]*){2,3}\.v[1-9][0-9]*$' AND length(type) <= 255),
    payload        jsonb       NOT NULL
        CONSTRAINT system_events_payload_object CHECK (jsonb_typeof(payload) = 'object'),
    actor          text        NOT NULL
        CONSTRAINT system_events_actor CHECK (actor ~ '^(user|service):[!-~]+$'),
    trace_id       text        NOT NULL,
    correlation_id text        NOT NULL,
    causation_id   text,
    occurred_at    timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- The writing transaction. Readers expose only rows whose transaction is
    -- older than every transaction still running (the commit horizon), so a
    -- client tailing by seq never skips a row that commits late.
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id()
);

CREATE INDEX system_events_org_seq ON system_events (org_id, seq);
CREATE INDEX system_events_org_type_seq ON system_events (org_id, type text_pattern_ops, seq);
CREATE INDEX system_events_org_correlation_seq ON system_events (org_id, correlation_id, seq);
CREATE INDEX system_events_org_occurred ON system_events (org_id, occurred_at);

-- Append-only for every role, owner and superuser included.
CREATE FUNCTION system_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'system_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER system_events_no_update_delete
    BEFORE UPDATE OR DELETE ON system_events
    FOR EACH ROW EXECUTE FUNCTION system_events_append_only();

CREATE TRIGGER system_events_no_truncate
    BEFORE TRUNCATE ON system_events
    FOR EACH STATEMENT EXECUTE FUNCTION system_events_append_only();

-- Publication state lives here, beside the log: one row per (event, stream)
-- still to be relayed. The relay deletes a row once the entry is on its stream.
CREATE TABLE outbox (
    event_seq  bigint      NOT NULL REFERENCES system_events (seq),
    stream     text        NOT NULL,
    org_id     uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_seq, stream)
);

CREATE TABLE idempotency_keys (
    org_id          uuid        NOT NULL,
    key             text        NOT NULL,
    -- SHA-256 of method, route and body: the same key with another request is refused.
    request_hash    bytea       NOT NULL,
    response_status smallint    NOT NULL,
    response_body   text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (org_id, key)
);

CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
