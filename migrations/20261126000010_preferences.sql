-- Language preferences, one table per scope, read only when a problem is
-- rendered: its title is in the user's language (user_preferences), else
-- the one Accept-Language asks for, else the org's default (org_settings),
-- else English (api::language). Both are changed by the api in one
-- transaction with their event (append_events) and idempotency key
-- (claim_idempotency_key), like every domain resource.
CREATE TABLE user_preferences (
    id         uuid        PRIMARY KEY,
    org_id     uuid        NOT NULL,
    -- The user's token subject (`sub`): a user's preferences are theirs
    -- within one org, as everything else the api keeps.
    subject    text        NOT NULL
        CONSTRAINT user_preferences_subject_length CHECK (char_length(subject) BETWEEN 1 AND 255),
    -- The codes of api::i18n::Lang; null when the user chose none.
    language   text
        CONSTRAINT user_preferences_language CHECK (language IN ('en', 'de', 'fr', 'es')),
    -- Optimistic concurrency: every change adds one; the ETag is this number
    -- (0 stands for no row yet).
    version    bigint      NOT NULL DEFAULT 1
        CONSTRAINT user_preferences_version_positive CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_preferences_one_per_user UNIQUE (org_id, subject)
);

CREATE TABLE org_settings (
    id               uuid        PRIMARY KEY,
    -- One row per org.
    org_id           uuid        NOT NULL UNIQUE,
    -- The codes of api::i18n::Lang; null: English.
    default_language text
        CONSTRAINT org_settings_default_language CHECK (default_language IN ('en', 'de', 'fr', 'es')),
    -- As on user_preferences.
    version          bigint      NOT NULL DEFAULT 1
        CONSTRAINT org_settings_version_positive CHECK (version >= 1),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Tenant isolation, as on souls and leads: an unset app.org_id matches no row.
ALTER TABLE user_preferences ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_preferences FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON user_preferences
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE org_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON org_settings
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- Only the api reads and changes them; a choice is cleared by setting null,
-- so no role deletes a row.
REVOKE ALL ON user_preferences FROM PUBLIC;
REVOKE ALL ON org_settings FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON user_preferences TO xentri_api;
GRANT SELECT, INSERT, UPDATE ON org_settings TO xentri_api;
