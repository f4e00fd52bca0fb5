-- The organisation's Soul: one per org, a state machine (the Soul Generation
-- Flow, api::soul::machine) over a JSON document of named sections. Every
-- change is made by the api in one transaction with its events
-- (append_events) and its idempotency key (claim_idempotency_key).
CREATE TABLE souls (
    id                uuid        PRIMARY KEY,
    -- One Soul per org.
    org_id            uuid        NOT NULL UNIQUE,
    -- The names of api::soul::machine::SoulState, to the letter.
    state             text        NOT NULL
        CONSTRAINT souls_state
        CHECK (state IN ('initiated', 'conversing', 'drafting', 'review_pending', 'editing', 'approved')),
    -- Named sections: an object whose keys are the sections' names.
    content           jsonb       NOT NULL DEFAULT '{}'
        CONSTRAINT souls_content_object CHECK (jsonb_typeof(content) = 'object'),
    -- Optimistic concurrency: every change adds one; the ETag is this number.
    version           bigint      NOT NULL DEFAULT 1
        CONSTRAINT souls_version_positive CHECK (version >= 1),
    -- The first approval (xentri.soul.created.v1); later approvals are
    -- updates (xentri.soul.updated.v1).
    first_approved_at timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Tenant isolation, as on system_events: an unset app.org_id matches no row.
ALTER TABLE souls ENABLE ROW LEVEL SECURITY;
ALTER TABLE souls FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON souls
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- Only the api changes Souls; no role deletes one.
REVOKE ALL ON souls FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON souls TO xentri_api;
