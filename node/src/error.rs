//! The API's one error type and its mapping to HTTP statuses.
//!
//! Every refusal the daemon answers goes through [`ApiError`]: handlers and the node supervisor never build a status
//! number themselves. Docker's clients show the `message` of the JSON body `{"message": ...}` and some decide on the
//! status (the docker CLI retries or reports differently for 404, 409, 503), so each variant is one status.

use axum::http::StatusCode;
use skep_manager::control::ControlError;

/// Why an API request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed or asks for something invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// 403: refused for who is asking or how (a browser's `Origin`, a `Host` that is not this daemon).
    #[error("{0}")]
    Forbidden(String),
    /// 401: a registry refused the credentials given.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: no such object, or no such route.
    #[error("{0}")]
    NotFound(String),
    /// 409: a name taken, or an object in use.
    #[error("{0}")]
    Conflict(String),
    /// 501: a feature skep does not carry out.
    #[error("{0}")]
    NotImplemented(String),
    /// 503: not in a swarm, not a manager, no leader, or already in a swarm.
    #[error("{0}")]
    Unavailable(String),
    /// 500: something went wrong on this node.
    #[error("{0}")]
    Internal(String),
    /// A control operation's refusal, with the status Docker gives it.
    #[error(transparent)]
    Control(#[from] ControlError),
}

impl ApiError {
    /// 400.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::InvalidArgument(message.into())
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::Forbidden(message.into())
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::NotFound(message.into())
    }
    /// 501.
    pub fn not_implemented(message: impl Into<String>) -> ApiError {
        ApiError::NotImplemented(message.into())
    }
    /// 503.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::Unavailable(message.into())
    }
    /// 500.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::Internal(message.into())
    }

    /// The HTTP status Docker answers this refusal with.
    pub fn status(&self) -> StatusCode {
        let code = match self {
            ApiError::InvalidArgument(_) => 400,
            ApiError::Forbidden(_) => 403,
            ApiError::Unauthorized(_) => 401,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::NotImplemented(_) => 501,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) => 500,
            ApiError::Control(e) => e.status(),
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<skep_registry::RegistryError> for ApiError {
    /// A registry's answer with Docker's statuses (`errdefs`): bad credentials 401, no such image 404, a reference
    /// that is not one 400, anything else (an unreachable registry too) 500.
    fn from(e: skep_registry::RegistryError) -> Self {
        use skep_registry::RegistryError as R;
        match e {
            R::InvalidReference(_) => ApiError::invalid(e.to_string()),
            R::Unauthorized { .. } => ApiError::Unauthorized(e.to_string()),
            R::NotFound { .. } => ApiError::not_found(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(format!("{e:#}"))
    }
}

/// Result of an API operation.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_dockers_status() {
        assert_eq!(ApiError::InvalidArgument("x".into()).status(), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::NotFound("x".into()).status(), StatusCode::NOT_FOUND);
        assert_eq!(ApiError::Forbidden("x".into()).status(), StatusCode::FORBIDDEN);
        assert_eq!(ApiError::NotImplemented("x".into()).status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(ApiError::Unavailable("x".into()).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ApiError::Internal("x".into()).status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ApiError::from(ControlError::Conflict("x".into())).status(), StatusCode::CONFLICT);
        assert_eq!(ApiError::from(ControlError::OutOfSequence).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
