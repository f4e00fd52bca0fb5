-- The org's websites: each a state machine (the Website Publish Flow,
-- xentri_core::site::machine) over a name and its pages. The api creates and
-- edits sites and moves them through the user's steps, each change in one
-- transaction with its events (append_events) and its idempotency key; the
-- worker's site_builds group takes the build's steps (publishing → live or
-- failed), in the transaction that records the build job as processed.
CREATE TABLE sites (
    id               uuid        PRIMARY KEY,
    org_id           uuid        NOT NULL,
    -- The api checks the length (xentri_core::site::page); this is the backstop.
    name             text        NOT NULL
        CONSTRAINT sites_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    -- The names of xentri_core::site::machine::SiteState, to the letter.
    state            text        NOT NULL DEFAULT 'draft'
        CONSTRAINT sites_state CHECK (state IN ('draft', 'preview', 'publishing', 'live', 'failed')),
    -- The pages, each {slug, title, blocks}, as the api validated them. The
    -- build validates them again: a page it cannot render fails the build.
    pages            jsonb       NOT NULL DEFAULT '[]'
        CONSTRAINT sites_pages_array CHECK (jsonb_typeof(pages) = 'array'),
    -- Optimistic concurrency: every change adds one; the ETag is this number.
    version          bigint      NOT NULL DEFAULT 1
        CONSTRAINT sites_version_positive CHECK (version >= 1),
    -- The site.build job (its event id) of the latest publish request: a
    -- build runs only for the job its site still names, so a job superseded
    -- by an edit and a new publish request does nothing when replayed.
    build_job_id     uuid,
    -- Why the latest build failed; null unless the site is failed.
    failure_reason   text,
    -- The version whose pages are served as HTML (site_pages_html), and when
    -- it was built; null until the first build succeeds.
    published_version bigint,
    published_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Tenant isolation, as on leads: an unset app.org_id matches no row.
ALTER TABLE sites ENABLE ROW LEVEL SECURITY;
ALTER TABLE sites FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON sites
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- The api creates and edits sites; the worker's build moves them to live or
-- failed. No role deletes one: its history stays in system_events.
REVOKE ALL ON sites FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON sites TO xentri_api;
GRANT SELECT, UPDATE ON sites TO xentri_worker;

-- The published HTML: one row per page of a site's latest successful build,
-- replaced as a whole by the next one. `GET …/sites/{id}/html/{page}` serves
-- it; what is served stays up while the site is edited, until a new build
-- replaces it.
CREATE TABLE site_pages_html (
    site_id      uuid        NOT NULL REFERENCES sites (id),
    -- The page's slug (xentri_core::site::page: lower-case letters, digits, '-').
    slug         text        NOT NULL,
    org_id       uuid        NOT NULL,
    -- A whole HTML document; every string from the site is escaped.
    html         text        NOT NULL,
    -- The site's version the page was built from (sites.published_version).
    site_version bigint      NOT NULL,
    built_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, slug)
);

ALTER TABLE site_pages_html ENABLE ROW LEVEL SECURITY;
ALTER TABLE site_pages_html FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON site_pages_html
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- The worker's build writes the pages; the api serves them.
REVOKE ALL ON site_pages_html FROM PUBLIC;
GRANT SELECT ON site_pages_html TO xentri_api;
GRANT SELECT, INSERT, DELETE ON site_pages_html TO xentri_worker;
