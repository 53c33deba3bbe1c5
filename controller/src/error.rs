//! The error every API operation returns, and its mapping to gRPC status codes.

use crate::ipam::IpamError;
use crate::store::StoreError;
use crate::validate::ValidationError;

/// An API failure; each variant is one gRPC status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Malformed input (names the field and the value).
    #[error("{0}")]
    InvalidArgument(String),
    /// A named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A named object, or a unique address, already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is well-formed but the state does not allow it (e.g. subnet exhausted).
    #[error("{0}")]
    FailedPrecondition(String),
    /// etcd unreachable, or too much contention.
    #[error("{0}")]
    Unavailable(String),
    /// A wait ran out of time.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Anything unexpected (corrupt data in the store).
    #[error("{0}")]
    Internal(String),
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::InvalidArgument(e.to_string())
    }
}

impl From<IpamError> for ApiError {
    fn from(e: IpamError) -> Self {
        ApiError::FailedPrecondition(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(format!("etcd unavailable: {m}")),
            StoreError::TxnTooLarge(m) => ApiError::InvalidArgument(format!(
                "etcd refused the transaction as too large ({m}); the controller's \
                 --etcd-max-txn-ops is higher than etcd's --max-txn-ops: raise etcd's limit, \
                 lower the controller's, or send smaller batches"
            )),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            ApiError::NotFound(m) => tonic::Status::not_found(m),
            ApiError::AlreadyExists(m) => tonic::Status::already_exists(m),
            ApiError::FailedPrecondition(m) => tonic::Status::failed_precondition(m),
            ApiError::Unavailable(m) => tonic::Status::unavailable(m),
            ApiError::DeadlineExceeded(m) => tonic::Status::deadline_exceeded(m),
            ApiError::Internal(m) => tonic::Status::internal(m),
        }
    }
}

/// Result alias for API operations.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let v = ValidationError::new("switch.name", "a b", "bad");
        let s: tonic::Status = ApiError::from(v).into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(s.message(), "invalid switch.name \"a b\": bad");
        let s: tonic::Status = ApiError::from(StoreError::Unavailable("down".into())).into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(s.message().contains("etcd unavailable"));
        let s: tonic::Status = ApiError::from(IpamError::VniExhausted).into();
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
    }
}
