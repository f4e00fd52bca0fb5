//! The database roles the services run as, and the check that row-level
//! security binds them.
//!
//! The migrations create the roles (cluster-wide, idempotently): three NOLOGIN
//! roles a transaction switches to with `set_config('role', …, true)`, and one
//! login role that is a member of all three and owns nothing. Their names are
//! fixed here, not settings: the migrations' grants and policies name them.
//!
//! Row-level security does not bind a superuser, a `BYPASSRLS` role, or
//! (unless forced) a table's owner, and a role that owns a table or its schema
//! can switch it off. [`check`] refuses a session that is any of these (unless
//! `database.test_allow_privileged_login`), and a service role that is, or can
//! become, one of them. The api and the worker run it at start-up and on every
//! new pooled connection.

use sqlx::PgConnection;

/// Every api transaction runs as this role.
pub const API: &str = "xentri_api";
/// The worker's relay (and `worker audit`) run as this role: it reads every org.
pub const RELAY: &str = "xentri_relay";
/// The worker's handlers and jobs run as this role.
pub const WORKER: &str = "xentri_worker";
/// The login role of the api and the worker: a member of the three roles
/// above, not a superuser, no `BYPASSRLS`, owner of nothing.
pub const SERVICE_LOGIN: &str = "xentri_service";
/// The roles transactions switch to.
pub const SERVICE_ROLES: [&str; 3] = [API, RELAY, WORKER];

/// A reason the services must not run on this database or login.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// The check itself could not run (PostgreSQL away, or the query failed).
    #[error("cannot check the database roles: {0}")]
    Query(#[source] sqlx::Error),
    /// The login can bypass row-level security.
    #[error(
        "the database login `{role}` bypasses row-level security (superuser or BYPASSRLS: {through}); \
         log in as xentri_service (database.url)"
    )]
    SessionBypasses {
        /// The session role.
        role: String,
        /// The roles with the attribute it is or can become.
        through: String,
    },
    /// The login owns tables, functions or schemas of this database.
    #[error(
        "the database login `{role}` owns objects of this database, so it could switch row-level security off; \
         log in as xentri_service (database.url) and keep the owner for migrations (database.migrate_url)"
    )]
    SessionOwns {
        /// The session role.
        role: String,
    },
    /// A service role is missing: the migrations did not run on this cluster.
    #[error("the database role `{role}` does not exist; apply the migrations (`api migrate`)")]
    Missing {
        /// The missing role.
        role: &'static str,
    },
    /// A service role can bypass row-level security.
    #[error(
        "the service role `{role}` can bypass row-level security (superuser or BYPASSRLS: {through}); \
         revoke it (ALTER ROLE … NOBYPASSRLS, REVOKE … FROM {role})"
    )]
    ServiceBypasses {
        /// The service role.
        role: &'static str,
        /// The roles with the attribute it is or can become.
        through: String,
    },
    /// A service role owns tables, functions or schemas.
    #[error("the service role `{role}` owns objects of this database, so it could switch row-level security off")]
    ServiceOwns {
        /// The service role.
        role: &'static str,
    },
}

/// What a role is (or can become, through membership) and what it owns, for
/// the service roles and, when asked, the session role
/// ([`crate::sql::ROLE_CHECK`]).
#[derive(sqlx::FromRow)]
struct RoleRow {
    role: String,
    is_session: bool,
    is_service: bool,
    bypasses_through: Vec<String>,
    owns: bool,
}

/// Checks, on `conn`, that row-level security binds the service roles and,
/// unless `allow_privileged_login` (tests only), the session's login role.
pub async fn check(conn: &mut PgConnection, allow_privileged_login: bool) -> Result<(), RoleError> {
    let rows: Vec<RoleRow> = sqlx::query_as(crate::sql::ROLE_CHECK)
        .bind(&SERVICE_ROLES[..])
        .bind(!allow_privileged_login)
        .fetch_all(conn)
        .await
        .map_err(RoleError::Query)?;
    if !allow_privileged_login && let Some(session) = rows.iter().find(|r| r.is_session) {
        if !session.bypasses_through.is_empty() {
            return Err(RoleError::SessionBypasses {
                role: session.role.clone(),
                through: session.bypasses_through.join(", "),
            });
        }
        if session.owns {
            return Err(RoleError::SessionOwns { role: session.role.clone() });
        }
    }
    for role in SERVICE_ROLES {
        let Some(row) = rows.iter().find(|r| r.is_service && r.role == role) else {
            return Err(RoleError::Missing { role });
        };
        if !row.bypasses_through.is_empty() {
            return Err(RoleError::ServiceBypasses { role, through: row.bypasses_through.join(", ") });
        }
        if row.owns {
            return Err(RoleError::ServiceOwns { role });
        }
    }
    Ok(())
}
