//! Every SQL statement the api and the worker run, in one place, next to the
//! schema in `migrations/` they run against.
//!
//! **Invariant:** code passes SQL to sqlx only as one of these constants, and
//! each is checked against the migrated schema: `api/tests/api/sql.rs`
//! prepares every statement of [`ALL`] on a freshly migrated database (a
//! statement naming a missing table, column or function fails
//! `./scripts/test`) and reads the crates' sources for SQL written anywhere
//! else.

/// Declares each statement as a constant and lists them all in [`ALL`].
macro_rules! statements {
    ($($(#[$doc:meta])* $name:ident = $sql:expr;)*) => {
        $($(#[$doc])* pub const $name: &str = $sql;)*

        /// Every statement, by name: what the schema check prepares.
        pub const ALL: &[(&str, &str)] = &[$((stringify!($name), $name)),*];
    };
}

/// The columns of a [`crate::StoredEvent`], in its order.
macro_rules! event_columns {
    () => {
        "id, seq, org_id, type, payload, actor, trace_id, correlation_id, causation_id, occurred_at"
    };
}

/// The columns of a Soul, in the order `api::soul::store::SoulRow` reads them.
macro_rules! soul_columns {
    () => {
        "id, org_id, state, content, version, first_approved_at, created_at, updated_at"
    };
}

/// The columns of a lead, in the order `api::leads::store::LeadRow` reads them.
macro_rules! lead_columns {
    () => {
        "id, org_id, name, email, company, source, status, version, created_at, updated_at"
    };
}

/// The columns of a site, in the order `xentri_core::site::SiteRow` reads them.
macro_rules! site_columns {
    () => {
        "id, org_id, name, state, pages, version, build_job_id, failure_reason, published_version, published_at, \
         created_at, updated_at"
    };
}

statements! {
    // Sessions and transactions.

    /// Answers at once: PostgreSQL is there.
    PING = "SELECT 1";
    /// Switches the session to a service role (`$1`), for a session of its
    /// own that never returns to the pool (the relay's).
    SET_SESSION_ROLE = "SELECT set_config('role', $1, false)";
    /// Switches the transaction to another org (`$1`, its UUID as text):
    /// row-level security then shows that org only.
    SET_ORG = "SELECT set_config('app.org_id', $1, true)";
    /// Sets the transaction's lock timeout (`$1`, e.g. `'2s'`).
    SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', $1, true)";
    /// Wakes the relay (`LISTEN xentri_outbox`). Outside any write
    /// transaction: a NOTIFY inside one would serialise every commit on
    /// PostgreSQL's notification lock.
    NOTIFY_OUTBOX = "SELECT pg_notify('xentri_outbox', '')";
    /// The login and the service roles: what [`crate::roles::check`] judges.
    /// `$1` the service roles, `$2` whether to include the session's login.
    ROLE_CHECK = r"
SELECT r.rolname::text AS role,
       r.rolname = session_user AS is_session,
       r.rolname = ANY($1) AS is_service,
       ARRAY(SELECT b.rolname::text FROM pg_roles b
              WHERE (b.rolsuper OR b.rolbypassrls) AND pg_has_role(r.oid, b.oid, 'MEMBER')
              ORDER BY b.rolname) AS bypasses_through,
       EXISTS (SELECT 1 FROM pg_namespace n
                WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
                  AND (pg_has_role(r.oid, n.nspowner, 'MEMBER')
                       OR EXISTS (SELECT 1 FROM pg_class c
                                   WHERE c.relnamespace = n.oid AND pg_has_role(r.oid, c.relowner, 'MEMBER'))
                       OR EXISTS (SELECT 1 FROM pg_proc p
                                   WHERE p.pronamespace = n.oid AND pg_has_role(r.oid, p.proowner, 'MEMBER'))))
           AS owns
  FROM pg_roles r
 WHERE r.rolname = ANY($1) OR (r.rolname = session_user AND $2)
";

    // The event log.

    /// Appends a batch: `$1` role, `$2` stream, `$3` key lifetime in seconds,
    /// `$4` the items (`new_event[]`). One row per item: `(item, claimed, seq)`.
    APPEND_EVENTS = "SELECT item, claimed, seq FROM append_events($1, $2, $3, $4)";
    /// One page of an org's events with each one's `tx_id` (see
    /// `list_events` in the migrations for the parameters).
    LIST_EVENTS = concat!(
        "SELECT ",
        event_columns!(),
        ", tx_id FROM list_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    /// One event by id (`$1`), in a transaction scoped to its org.
    EVENT_BY_ID = concat!("SELECT ", event_columns!(), " FROM system_events WHERE id = $1");
    /// The live answer under an idempotency key (`$1`), in a transaction
    /// scoped to its org.
    IDEMPOTENCY_ANSWER = "SELECT request_hash, response_status, response_body, event_id
   FROM idempotency_keys WHERE key = $1 AND expires_at > now()";

    /// Claims idempotency key `$2` of org `$1` for a domain mutation, with the
    /// request's hash `$3`, for `$4` seconds: `in_flight`, `answered` or
    /// `claimed` (see `claim_idempotency_key`). The answer is written before
    /// commit with [`ANSWER_IDEMPOTENCY_KEY`].
    CLAIM_IDEMPOTENCY_KEY = "SELECT claim_idempotency_key($1, $2, $3, 0::smallint, NULL, '',
        now() + make_interval(secs => $4))";
    /// The answer under key `$1`: status `$2`, body `$3`; true when the key was
    /// there to answer.
    ANSWER_IDEMPOTENCY_KEY = "SELECT coalesce(answer_idempotency_key($1, $2, $3), false)";

    // Domain resources, in a transaction scoped to their org.

    /// The org's (`$1`) Soul.
    SOUL_BY_ORG = concat!("SELECT ", soul_columns!(), " FROM souls WHERE org_id = $1");
    /// The org's (`$1`) Soul, locked until the transaction ends.
    SOUL_BY_ORG_FOR_UPDATE = concat!("SELECT ", soul_columns!(), " FROM souls WHERE org_id = $1 FOR UPDATE");
    /// A new Soul: `$1` id, `$2` org, `$3` state; no row when the org has one.
    SOUL_INSERT = concat!(
        "INSERT INTO souls (id, org_id, state) VALUES ($1, $2, $3) ON CONFLICT (org_id) DO NOTHING RETURNING ",
        soul_columns!()
    );
    /// A change of Soul `$1` at version `$2`: state `$3`, content `$4`, first
    /// approval `$5` (kept once set); the version goes up by one. No row when
    /// the version moved meanwhile.
    SOUL_UPDATE = concat!(
        "UPDATE souls SET state = $3, content = $4, version = version + 1,
        first_approved_at = coalesce(first_approved_at, $5), updated_at = now()
  WHERE id = $1 AND version = $2 RETURNING ",
        soul_columns!()
    );

    /// Lead `$1` of the org (row-level security scopes it).
    LEAD_BY_ID = concat!("SELECT ", lead_columns!(), " FROM leads WHERE id = $1");
    /// Lead `$1`, locked until the transaction ends.
    LEAD_BY_ID_FOR_UPDATE = concat!("SELECT ", lead_columns!(), " FROM leads WHERE id = $1 FOR UPDATE");
    /// New leads of org `$1`, `new`, one per element of the arrays: ids `$2`,
    /// names `$3`, emails `$4`, companies `$5` (null for none), sources `$6`.
    /// One statement for one lead or an import of a thousand.
    LEADS_INSERT = concat!(
        "INSERT INTO leads (id, org_id, name, email, company, source)
 SELECT l.id, $1, l.name, l.email, l.company, l.source
   FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[]) AS l(id, name, email, company, source)
 RETURNING ",
        lead_columns!()
    );
    /// A change of lead `$1` at version `$2`: name `$3`, email `$4`, company
    /// `$5`, status `$6`; the version goes up by one. No row when the version
    /// moved meanwhile.
    LEAD_UPDATE = concat!(
        "UPDATE leads SET name = $3, email = $4, company = $5, status = $6, version = version + 1, updated_at = now()
  WHERE id = $1 AND version = $2 RETURNING ",
        lead_columns!()
    );
    /// One page of org `$1`'s leads, newest first by (created_at, id): status
    /// `$2` (null for any), after the cursor (`$3` created_at, `$4` id; null
    /// for the first page), at most `$5` rows.
    LEADS_PAGE = concat!(
        "SELECT ",
        lead_columns!(),
        " FROM leads
  WHERE org_id = $1
    AND ($2::text IS NULL OR status = $2)
    AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
  ORDER BY created_at DESC, id DESC
  LIMIT $5"
    );

    /// Site `$1` of the org (row-level security scopes it).
    SITE_BY_ID = concat!("SELECT ", site_columns!(), " FROM sites WHERE id = $1");
    /// Site `$1`, locked until the transaction ends: the api's changes and
    /// the worker's build of one site take turns.
    SITE_BY_ID_FOR_UPDATE = concat!("SELECT ", site_columns!(), " FROM sites WHERE id = $1 FOR UPDATE");
    /// A new site, `draft`: `$1` id, `$2` org, `$3` name, `$4` pages.
    SITE_INSERT = concat!(
        "INSERT INTO sites (id, org_id, name, pages) VALUES ($1, $2, $3, $4) RETURNING ",
        site_columns!()
    );
    /// A user's change of site `$1` at version `$2`: name `$3`, pages `$4`,
    /// state `$5`, build job `$6`, failure reason `$7`; the version goes up
    /// by one. No row when the version moved meanwhile.
    SITE_UPDATE = concat!(
        "UPDATE sites SET name = $3, pages = $4, state = $5, build_job_id = $6, failure_reason = $7,
        version = version + 1, updated_at = now()
  WHERE id = $1 AND version = $2 RETURNING ",
        site_columns!()
    );
    /// A build's outcome for site `$1` at version `$2`: state `$3`, failure
    /// reason `$4`; when `$5` (it went live) the new version is the one
    /// published. No row when the version moved meanwhile.
    SITE_BUILD_OUTCOME = concat!(
        "UPDATE sites SET state = $3, failure_reason = $4,
        published_version = CASE WHEN $5 THEN version + 1 ELSE published_version END,
        published_at = CASE WHEN $5 THEN now() ELSE published_at END,
        version = version + 1, updated_at = now()
  WHERE id = $1 AND version = $2 RETURNING ",
        site_columns!()
    );
    /// Removes the published pages of site `$1` (a build replaces them all).
    SITE_HTML_DELETE = "DELETE FROM site_pages_html WHERE site_id = $1";
    /// The published pages of site `$1` of org `$2`, built from version `$3`:
    /// slugs `$4`, documents `$5`.
    SITE_HTML_INSERT = "INSERT INTO site_pages_html (site_id, org_id, site_version, slug, html)
 SELECT $1, $2, $3, p.slug, p.html FROM unnest($4::text[], $5::text[]) AS p(slug, html)";
    /// The published HTML of page `$2` of site `$1`.
    SITE_PAGE_HTML = "SELECT html FROM site_pages_html WHERE site_id = $1 AND slug = $2";
    /// The languages a problem's title may be written in for user `$2` of org
    /// `$1`: the user's preference and the org's default, each null when unset.
    PROBLEM_LANGUAGES = "SELECT (SELECT language FROM user_preferences WHERE org_id = $1 AND subject = $2),
        (SELECT default_language FROM org_settings WHERE org_id = $1)";
    /// User `$2`'s preferences in org `$1`.
    USER_PREFERENCES_BY_SUBJECT =
        "SELECT language, version FROM user_preferences WHERE org_id = $1 AND subject = $2";
    /// The same, locked until the transaction ends.
    USER_PREFERENCES_BY_SUBJECT_FOR_UPDATE =
        "SELECT language, version FROM user_preferences WHERE org_id = $1 AND subject = $2 FOR UPDATE";
    /// User `$3`'s first preferences in org `$2` (id `$1`): language `$4`;
    /// no row when another request made them meanwhile.
    USER_PREFERENCES_INSERT = "INSERT INTO user_preferences (id, org_id, subject, language) VALUES ($1, $2, $3, $4)
 ON CONFLICT (org_id, subject) DO NOTHING RETURNING language, version";
    /// A change of user `$2`'s preferences in org `$1` at version `$3`:
    /// language `$4`; the version goes up by one.
    USER_PREFERENCES_UPDATE = "UPDATE user_preferences SET language = $4, version = version + 1, updated_at = now()
  WHERE org_id = $1 AND subject = $2 AND version = $3 RETURNING language, version";
    /// Org `$1`'s settings.
    ORG_SETTINGS_BY_ORG = "SELECT default_language, version FROM org_settings WHERE org_id = $1";
    /// The same, locked until the transaction ends.
    ORG_SETTINGS_BY_ORG_FOR_UPDATE =
        "SELECT default_language, version FROM org_settings WHERE org_id = $1 FOR UPDATE";
    /// Org `$2`'s first settings (id `$1`): default language `$3`; no row when
    /// another request made them meanwhile.
    ORG_SETTINGS_INSERT = "INSERT INTO org_settings (id, org_id, default_language) VALUES ($1, $2, $3)
 ON CONFLICT (org_id) DO NOTHING RETURNING default_language, version";
    /// A change of org `$1`'s settings at version `$2`: default language `$3`;
    /// the version goes up by one.
    ORG_SETTINGS_UPDATE = "UPDATE org_settings SET default_language = $3, version = version + 1, updated_at = now()
  WHERE org_id = $1 AND version = $2 RETURNING default_language, version";

    // The relay, on its own session as the relay role.

    /// Tries the relay lock (class `$1`, key `$2`), session-level.
    RELAY_TRY_LOCK = "SELECT pg_try_advisory_lock($1, $2)";
    /// Releases it.
    RELAY_UNLOCK = "SELECT pg_advisory_unlock($1, $2)";
    /// A batch: outbox rows below the commit horizon after `($1, $2, $3)`,
    /// the last row published, in position order, at most `$4`.
    RELAY_BATCH = concat!(
        "SELECT o.tx_id, o.stream, ",
        "e.id, e.seq, e.org_id, e.type, e.payload, e.actor, e.trace_id, e.correlation_id, e.causation_id, ",
        "e.occurred_at
   FROM outbox o JOIN system_events e ON e.seq = o.event_seq
  WHERE o.tx_id < pg_snapshot_xmin(pg_current_snapshot())
    AND (o.tx_id, o.event_seq, o.stream) > ($1, $2, $3)
  ORDER BY o.tx_id, o.event_seq, o.stream
  LIMIT $4"
    );
    /// Deletes published rows: `$1` their seqs, `$2` their streams.
    RELAY_DELETE_PUBLISHED =
        "DELETE FROM outbox WHERE (event_seq, stream) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))";
    /// Outbox rows not yet published (the backlog gauge).
    OUTBOX_BACKLOG = "SELECT count(*) FROM outbox";

    // Handlers and processed records, as the worker role.

    /// Records that group `$1` processed events `$2`; returns the ids it had
    /// not yet processed.
    RECORD_PROCESSED_BATCH = "INSERT INTO processed_events (group_name, event_id)
 SELECT $1, id FROM unnest($2::uuid[]) AS id ORDER BY id
 ON CONFLICT DO NOTHING
 RETURNING event_id";
    /// `event_counts`: one event of org `$1`, type `$2`, seq `$3`, counted
    /// in lane slot `$4`'s row.
    COUNT_EVENT = "INSERT INTO event_count_slots (org_id, type, slot, count, last_seq) VALUES ($1, $2, $4, 1, $3)
 ON CONFLICT (org_id, type, slot) DO UPDATE
    SET count = event_count_slots.count + 1,
        last_seq = GREATEST(event_count_slots.last_seq, EXCLUDED.last_seq),
        updated_at = now()";
    /// `event_counts`: events counted in lane slot `$1`'s rows, per (org,
    /// type): `$2` orgs, `$3` types, `$4` counts, `$5` highest seqs. The
    /// function writes each org's rows under that org.
    COUNT_EVENTS = "SELECT count_events($1, $2, $3, $4, $5)";

    // Purges: a chunk of at most `$1` rows, oldest first, each chunk its own
    // transaction.

    /// Expired idempotency keys.
    PURGE_EXPIRED_IDEMPOTENCY_KEYS = "DELETE FROM idempotency_keys
  WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM idempotency_keys
             WHERE expires_at <= now()
             ORDER BY expires_at
             LIMIT $1))
    AND expires_at <= now()";
    /// Processed records older than `$2` seconds.
    PURGE_PROCESSED_EVENTS = "DELETE FROM processed_events
  WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM processed_events
             WHERE processed_at < now() - make_interval(secs => $2)
             ORDER BY processed_at
             LIMIT $1))
    AND processed_at < now() - make_interval(secs => $2)";

    // `worker audit` and `worker republish`, as the relay role.

    /// The highest committed `seq`, and the seqs still in the outbox for
    /// streams `$1`, in one snapshot.
    AUDIT_TOP_AND_OUTBOX = "SELECT (SELECT coalesce(max(seq), 0) FROM system_events),
        ARRAY(SELECT event_seq FROM outbox WHERE stream = ANY($1))";
    /// Events with `$2 < seq <= $3` (and `occurred_at >= $4` when given), at
    /// most `$5`, each with whether group `$1` has a processed record of it.
    AUDIT_PAGE = "SELECT e.seq, e.id, e.org_id, e.type, e.actor, e.occurred_at,
        EXISTS (SELECT 1 FROM processed_events p WHERE p.group_name = $1 AND p.event_id = e.id) AS processed
   FROM system_events e
  WHERE e.seq > $2 AND e.seq <= $3 AND ($4::timestamptz IS NULL OR e.occurred_at >= $4)
  ORDER BY e.seq
  LIMIT $5";
    /// The events with seqs `$1`, in `seq` order.
    EVENTS_BY_SEQ = concat!("SELECT ", event_columns!(), " FROM system_events WHERE seq = ANY($1) ORDER BY seq");
}

/// The statement that opens a transaction as a service role, for one org or
/// none: `BEGIN` and the settings in one round trip (a simple-query batch, so
/// it cannot be prepared). Interpolation is safe: `role` is one of
/// [`crate::roles::SERVICE_ROLES`] (a constant, not a setting), and a UUID
/// prints as hex digits and dashes. Run it through [`crate::db::begin_as`].
pub fn begin_as(role: &str, org_id: Option<uuid::Uuid>) -> String {
    match org_id {
        Some(org_id) => {
            format!("BEGIN; SELECT set_config('role', '{role}', true), set_config('app.org_id', '{org_id}', true)")
        }
        None => format!("BEGIN; SELECT set_config('role', '{role}', true)"),
    }
}
