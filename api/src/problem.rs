//! The one problem+json boundary (RFC 9457).
//!
//! Handlers return [`ApiError`]; warp's own rejections pass through [`recover`].
//! Both become a [`Problem`] carried on the response; the edge renders it with
//! the request's language and trace id, so every non-2xx answer has one shape.
//! Only safe text reaches `detail`; causes go to the log.

use std::convert::Infallible;
use std::sync::Arc;

use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use warp::reply::Response;

use crate::appender::AppendError;
use crate::i18n::Lang;

/// One kind of problem: its `type` URI, status and title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// 400: the request cannot be read (malformed JSON, query string or header).
    MalformedRequest,
    /// 400: a mutating request without `Idempotency-Key`.
    IdempotencyKeyRequired,
    /// 401
    Unauthorized,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 408: the request body did not arrive within `api.body_read_timeout_ms`.
    RequestTimeout,
    /// 409: the first request with this idempotency key is still running.
    IdempotencyKeyInFlight,
    /// 409: the resource's state machine does not allow this step from its
    /// current state; `state` and `allowed_transitions` say what it allows.
    InvalidTransition,
    /// 409: the resource exists already (a Soul is one per org).
    AlreadyExists,
    /// 412: `If-Match` names another version than the current one.
    PreconditionFailed,
    /// 413
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 422: fields break their rules; `errors` lists them.
    ValidationFailed,
    /// 422: an idempotency key reused with a different request.
    IdempotencyKeyReused,
    /// 428: an update without `If-Match`.
    PreconditionRequired,
    /// 500
    Internal,
    /// 503: a dependency is down.
    ServiceUnavailable,
    /// 503: more requests are being answered than `api.max_concurrent_requests`.
    Overloaded,
}

impl ProblemKind {
    /// Every kind, for tests and documentation.
    pub const ALL: [ProblemKind; 19] = [
        ProblemKind::MalformedRequest,
        ProblemKind::IdempotencyKeyRequired,
        ProblemKind::Unauthorized,
        ProblemKind::Forbidden,
        ProblemKind::NotFound,
        ProblemKind::MethodNotAllowed,
        ProblemKind::RequestTimeout,
        ProblemKind::IdempotencyKeyInFlight,
        ProblemKind::InvalidTransition,
        ProblemKind::AlreadyExists,
        ProblemKind::PreconditionFailed,
        ProblemKind::PayloadTooLarge,
        ProblemKind::UnsupportedMediaType,
        ProblemKind::ValidationFailed,
        ProblemKind::IdempotencyKeyReused,
        ProblemKind::PreconditionRequired,
        ProblemKind::Internal,
        ProblemKind::ServiceUnavailable,
        ProblemKind::Overloaded,
    ];

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ProblemKind::MalformedRequest | ProblemKind::IdempotencyKeyRequired => StatusCode::BAD_REQUEST,
            ProblemKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemKind::Forbidden => StatusCode::FORBIDDEN,
            ProblemKind::NotFound => StatusCode::NOT_FOUND,
            ProblemKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ProblemKind::IdempotencyKeyInFlight | ProblemKind::InvalidTransition | ProblemKind::AlreadyExists => {
                StatusCode::CONFLICT
            }
            ProblemKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ProblemKind::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            ProblemKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemKind::ValidationFailed | ProblemKind::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ProblemKind::ServiceUnavailable | ProblemKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The last segment of the `type` URI.
    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::MalformedRequest => "malformed-request",
            ProblemKind::IdempotencyKeyRequired => "idempotency-key-required",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::NotFound => "not-found",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::RequestTimeout => "request-timeout",
            ProblemKind::IdempotencyKeyInFlight => "idempotency-key-in-flight",
            ProblemKind::InvalidTransition => "invalid-transition",
            ProblemKind::AlreadyExists => "already-exists",
            ProblemKind::PreconditionFailed => "precondition-failed",
            ProblemKind::PreconditionRequired => "precondition-required",
            ProblemKind::PayloadTooLarge => "payload-too-large",
            ProblemKind::UnsupportedMediaType => "unsupported-media-type",
            ProblemKind::ValidationFailed => "validation-failed",
            ProblemKind::IdempotencyKeyReused => "idempotency-key-reused",
            ProblemKind::Internal => "internal",
            ProblemKind::ServiceUnavailable => "service-unavailable",
            ProblemKind::Overloaded => "overloaded",
        }
    }

    /// The `type` URI.
    pub fn type_uri(self) -> String {
        format!("https://xentri.io/errors/{}", self.slug())
    }

    /// The kind a bare status stands for, for answers that carry no problem.
    pub fn for_status(status: StatusCode) -> Self {
        Self::ALL.into_iter().find(|k| k.status() == status).unwrap_or(if status.is_server_error() {
            ProblemKind::Internal
        } else {
            ProblemKind::MalformedRequest
        })
    }

    /// The title in `lang`.
    pub fn title(self, lang: Lang) -> &'static str {
        use Lang::*;
        use ProblemKind::*;
        match (self, lang) {
            (MalformedRequest, En) => "Malformed Request",
            (MalformedRequest, De) => "Fehlerhafte Anfrage",
            (MalformedRequest, Fr) => "Requête mal formée",
            (MalformedRequest, Es) => "Solicitud mal formada",
            (IdempotencyKeyRequired, En) => "Idempotency Key Required",
            (IdempotencyKeyRequired, De) => "Idempotenzschlüssel erforderlich",
            (IdempotencyKeyRequired, Fr) => "Clé d'idempotence requise",
            (IdempotencyKeyRequired, Es) => "Se requiere una clave de idempotencia",
            (Unauthorized, En) => "Unauthorized",
            (Unauthorized, De) => "Nicht authentifiziert",
            (Unauthorized, Fr) => "Non authentifié",
            (Unauthorized, Es) => "No autenticado",
            (Forbidden, En) => "Forbidden",
            (Forbidden, De) => "Zugriff verweigert",
            (Forbidden, Fr) => "Accès refusé",
            (Forbidden, Es) => "Acceso denegado",
            (NotFound, En) => "Resource Not Found",
            (NotFound, De) => "Ressource nicht gefunden",
            (NotFound, Fr) => "Ressource introuvable",
            (NotFound, Es) => "Recurso no encontrado",
            (MethodNotAllowed, En) => "Method Not Allowed",
            (MethodNotAllowed, De) => "Methode nicht erlaubt",
            (MethodNotAllowed, Fr) => "Méthode non autorisée",
            (MethodNotAllowed, Es) => "Método no permitido",
            (RequestTimeout, En) => "Request Timeout",
            (RequestTimeout, De) => "Zeitüberschreitung der Anfrage",
            (RequestTimeout, Fr) => "Délai de requête dépassé",
            (RequestTimeout, Es) => "Tiempo de espera de la solicitud agotado",
            (IdempotencyKeyInFlight, En) => "Request Already In Progress",
            (IdempotencyKeyInFlight, De) => "Anfrage wird bereits bearbeitet",
            (IdempotencyKeyInFlight, Fr) => "Requête déjà en cours",
            (IdempotencyKeyInFlight, Es) => "Solicitud ya en curso",
            (InvalidTransition, En) => "Transition Not Allowed",
            (InvalidTransition, De) => "Übergang nicht erlaubt",
            (InvalidTransition, Fr) => "Transition non autorisée",
            (InvalidTransition, Es) => "Transición no permitida",
            (AlreadyExists, En) => "Resource Already Exists",
            (AlreadyExists, De) => "Ressource existiert bereits",
            (AlreadyExists, Fr) => "La ressource existe déjà",
            (AlreadyExists, Es) => "El recurso ya existe",
            (PreconditionFailed, En) => "Precondition Failed",
            (PreconditionFailed, De) => "Vorbedingung fehlgeschlagen",
            (PreconditionFailed, Fr) => "Échec de la précondition",
            (PreconditionFailed, Es) => "La condición previa falló",
            (PreconditionRequired, En) => "Precondition Required",
            (PreconditionRequired, De) => "Vorbedingung erforderlich",
            (PreconditionRequired, Fr) => "Précondition requise",
            (PreconditionRequired, Es) => "Se requiere una condición previa",
            (PayloadTooLarge, En) => "Payload Too Large",
            (PayloadTooLarge, De) => "Anfrage zu groß",
            (PayloadTooLarge, Fr) => "Requête trop volumineuse",
            (PayloadTooLarge, Es) => "Solicitud demasiado grande",
            (UnsupportedMediaType, En) => "Unsupported Media Type",
            (UnsupportedMediaType, De) => "Nicht unterstützter Medientyp",
            (UnsupportedMediaType, Fr) => "Type de média non pris en charge",
            (UnsupportedMediaType, Es) => "Tipo de medio no admitido",
            (ValidationFailed, En) => "Validation Failed",
            (ValidationFailed, De) => "Validierung fehlgeschlagen",
            (ValidationFailed, Fr) => "Échec de la validation",
            (ValidationFailed, Es) => "Error de validación",
            (IdempotencyKeyReused, En) => "Idempotency Key Reused",
            (IdempotencyKeyReused, De) => "Idempotenzschlüssel wiederverwendet",
            (IdempotencyKeyReused, Fr) => "Clé d'idempotence réutilisée",
            (IdempotencyKeyReused, Es) => "Clave de idempotencia reutilizada",
            (Internal, En) => "Internal Server Error",
            (Internal, De) => "Interner Serverfehler",
            (Internal, Fr) => "Erreur interne du serveur",
            (Internal, Es) => "Error interno del servidor",
            (ServiceUnavailable, En) => "Service Unavailable",
            (ServiceUnavailable, De) => "Dienst nicht verfügbar",
            (ServiceUnavailable, Fr) => "Service indisponible",
            (ServiceUnavailable, Es) => "Servicio no disponible",
            (Overloaded, En) => "Overloaded",
            (Overloaded, De) => "Überlastet",
            (Overloaded, Fr) => "Surchargé",
            (Overloaded, Es) => "Sobrecargado",
        }
    }
}

/// One field that breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, as named in the request (`payload`, `type`, `query.limit`, …).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// A problem on its way to the edge, which renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which problem.
    pub kind: ProblemKind,
    /// Safe, specific text for the client.
    pub detail: String,
    /// Field errors (validation problems only).
    pub errors: Vec<FieldError>,
    /// An invalid transition's current state and the steps it allows.
    pub transitions: Option<AllowedTransitions>,
}

/// What a state machine allows from the state a resource is in: the extension
/// members of an `invalid-transition` problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedTransitions {
    /// The current state.
    pub state: &'static str,
    /// The states a transition may go to from it.
    pub allowed: Vec<&'static str>,
}

/// The rendered document (also the OpenAPI schema of every error answer).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemDocument {
    /// `https://xentri.io/errors/{slug}`
    #[serde(rename = "type")]
    #[schema(rename = "type", example = "https://xentri.io/errors/not-found")]
    pub type_uri: String,
    /// Short summary, in the caller's language: their own choice, then
    /// `Accept-Language`, then the org's default, then English.
    #[schema(example = "Resource Not Found")]
    pub title: &'static str,
    /// HTTP status.
    #[schema(example = 404)]
    pub status: u16,
    /// What happened, for this request.
    pub detail: String,
    /// The request's W3C trace id, to find its log lines.
    #[schema(example = "4bf92f3577b34da6a3ce929d0e0e4736")]
    pub trace_id: String,
    /// Present on validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Present on `invalid-transition` problems: the resource's current state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "drafting")]
    pub state: Option<&'static str>,
    /// Present on `invalid-transition` problems: the states a transition may
    /// go to from the current one (possibly none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["review_pending"]))]
    pub allowed_transitions: Option<Vec<&'static str>>,
}

impl Problem {
    /// A problem of `kind` with `detail`.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into(), errors: Vec::new(), transitions: None }
    }

    /// A 409 `invalid-transition` listing what `state` allows.
    pub fn invalid_transition(detail: impl Into<String>, transitions: AllowedTransitions) -> Self {
        Self {
            kind: ProblemKind::InvalidTransition,
            detail: detail.into(),
            errors: Vec::new(),
            transitions: Some(transitions),
        }
    }

    /// A validation problem listing `errors`.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self { kind: ProblemKind::ValidationFailed, detail, errors, transitions: None }
    }

    /// An empty response with this problem attached, for the edge to render.
    pub fn into_response(self) -> Response {
        let mut response = Response::new(Default::default());
        *response.status_mut() = self.kind.status();
        response.extensions_mut().insert(self);
        response
    }

    /// The document in `lang` for the request traced as `trace_id`.
    pub fn document(&self, lang: Lang, trace_id: &str) -> ProblemDocument {
        ProblemDocument {
            type_uri: self.kind.type_uri(),
            title: self.kind.title(lang),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
            trace_id: trace_id.to_owned(),
            errors: self.errors.clone(),
            state: self.transitions.as_ref().map(|t| t.state),
            allowed_transitions: self.transitions.as_ref().map(|t| t.allowed.clone()),
        }
    }
}

/// What handlers fail with. One variant per cause; [`ApiError::problem`] picks
/// the answer, and only safe text goes into it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A problem to answer as is.
    #[error("{}: {}", .0.kind.slug(), .0.detail)]
    Problem(Problem),
    /// PostgreSQL could not be reached in time.
    #[error("postgres unavailable")]
    DatabaseUnavailable(#[source] Arc<sqlx::Error>),
    /// Anything else: logged with its cause, answered as a vague 500.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        ApiError::Problem(problem)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Arc::new(error).into()
    }
}

impl From<Arc<sqlx::Error>> for ApiError {
    fn from(error: Arc<sqlx::Error>) -> Self {
        if xentri_core::db::unavailable(&error) {
            ApiError::DatabaseUnavailable(error)
        } else {
            ApiError::Internal(anyhow::Error::new(error))
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::Database(error) => error.into(),
            AppendError::Stopped => {
                Problem::new(ProblemKind::ServiceUnavailable, "The api is shutting down; retry shortly").into()
            }
        }
    }
}

impl ApiError {
    /// The problem answered for this error; server-side causes are logged here.
    pub fn problem(self) -> Problem {
        match self {
            ApiError::Problem(problem) => problem,
            ApiError::DatabaseUnavailable(cause) => {
                tracing::error!(error = %cause, "postgres unavailable");
                Problem::new(ProblemKind::ServiceUnavailable, "The database is unavailable; retry shortly")
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                Problem::new(ProblemKind::Internal, "An unexpected error occurred")
            }
        }
    }

    /// The response for this error.
    pub fn into_response(self) -> Response {
        self.problem().into_response()
    }
}

/// Turns a handler's result into a response.
pub fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}

/// The one `recover` for warp's own rejections.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    use warp::reject;
    let problem = if rejection.is_not_found() {
        Problem::new(ProblemKind::NotFound, "No resource at this path")
    } else if rejection.find::<reject::MethodNotAllowed>().is_some() {
        Problem::new(ProblemKind::MethodNotAllowed, "This method is not allowed on this path")
    } else if rejection.find::<reject::PayloadTooLarge>().is_some() {
        Problem::new(ProblemKind::PayloadTooLarge, "The request body is too large")
    } else if rejection.find::<reject::UnsupportedMediaType>().is_some() {
        Problem::new(ProblemKind::UnsupportedMediaType, "The request's content type is not supported")
    } else if rejection.find::<reject::InvalidQuery>().is_some() {
        Problem::new(ProblemKind::MalformedRequest, "The query string is malformed")
    } else if let Some(header) = rejection.find::<reject::InvalidHeader>() {
        Problem::new(ProblemKind::MalformedRequest, format!("Header {} is malformed", header.name()))
    } else if let Some(header) = rejection.find::<reject::MissingHeader>() {
        Problem::new(ProblemKind::MalformedRequest, format!("Header {} is required", header.name()))
    } else if rejection.find::<warp::filters::body::BodyDeserializeError>().is_some() {
        Problem::new(ProblemKind::MalformedRequest, "The request body is not valid JSON")
    } else {
        tracing::error!(rejection = ?rejection, "unhandled rejection");
        Problem::new(ProblemKind::Internal, "An unexpected error occurred")
    };
    Ok(problem.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_type_and_its_status() {
        let slugs: std::collections::HashSet<_> = ProblemKind::ALL.iter().map(|k| k.slug()).collect();
        assert_eq!(slugs.len(), ProblemKind::ALL.len());
        for kind in ProblemKind::ALL {
            for lang in [Lang::En, Lang::De, Lang::Fr, Lang::Es] {
                assert!(!kind.title(lang).is_empty());
            }
            assert!(kind.status().is_client_error() || kind.status().is_server_error());
        }
        assert_eq!(ProblemKind::for_status(StatusCode::NOT_FOUND), ProblemKind::NotFound);
        assert_eq!(ProblemKind::for_status(StatusCode::BAD_GATEWAY), ProblemKind::Internal);
    }
}
