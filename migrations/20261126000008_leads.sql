-- The org's sales leads: each a state machine (the Lead Lifecycle Flow,
-- api::leads::machine) over a contact's fields. Every change is made by the
-- api in one transaction with its events (append_events) and its idempotency
-- key (claim_idempotency_key); an import writes all its rows or none.
CREATE TABLE leads (
    id         uuid        PRIMARY KEY,
    org_id     uuid        NOT NULL,
    -- The api checks the lengths and the address' shape (api::routes::leads::
    -- request); these are the backstop.
    name       text        NOT NULL
        CONSTRAINT leads_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    email      text        NOT NULL
        CONSTRAINT leads_email_length CHECK (char_length(email) BETWEEN 3 AND 254),
    company    text
        CONSTRAINT leads_company_length CHECK (char_length(company) BETWEEN 1 AND 200),
    -- Where the lead came from: the names of api::leads::store::LeadSource.
    source     text        NOT NULL
        CONSTRAINT leads_source CHECK (source IN ('form', 'import', 'manual')),
    -- The names of api::leads::machine::LeadStatus, to the letter.
    status     text        NOT NULL DEFAULT 'new'
        CONSTRAINT leads_status
        CHECK (status IN ('new', 'contacted', 'qualified', 'disqualified', 'proposal', 'won', 'lost')),
    -- Optimistic concurrency: every change adds one; the ETag is this number.
    version    bigint      NOT NULL DEFAULT 1
        CONSTRAINT leads_version_positive CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The list pages newest first by (created_at, id) within the org; a status
-- filter pages the same order among the org's leads of that status.
CREATE INDEX leads_org_created ON leads (org_id, created_at DESC, id DESC);
CREATE INDEX leads_org_status_created ON leads (org_id, status, created_at DESC, id DESC);

-- Tenant isolation, as on souls: an unset app.org_id matches no row.
ALTER TABLE leads ENABLE ROW LEVEL SECURITY;
ALTER TABLE leads FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON leads
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- Only the api changes leads; no role deletes one (a lead ends won, lost or
-- disqualified, and its history stays in system_events).
REVOKE ALL ON leads FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON leads TO xentri_api;
