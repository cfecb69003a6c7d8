//! Why a storage operation failed, and whether trying again can help.

use crate::error::{Temporary, io_is_temporary};

pub(super) const ABORTED: &str =
    "; the incomplete multipart upload was aborted, nothing is visible under this key";

/// A storage operation that failed. Names the storage and the key, and keeps the cause.
#[derive(Debug, thiserror::Error)]
#[error("storage {storage}: {what} {key}: {cause}{}", if *.aborted { ABORTED } else { "" })]
pub struct StorageError {
    /// Storage name.
    pub storage: String,
    /// What was being done.
    pub what: &'static str,
    /// The object key.
    pub key: String,
    /// Why.
    #[source]
    pub cause: Cause,
    /// Whether a multipart upload was aborted because of it.
    pub aborted: bool,
}

/// What went wrong in a storage operation.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// The object store refused or failed the request (after its own retries).
    #[error(transparent)]
    Store(#[from] object_store::Error),
    /// Local file I/O (the artifact being uploaded, a download's target).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A manifest that does not parse.
    #[error(transparent)]
    Manifest(#[from] serde_json::Error),
    /// What is stored does not match the manifest, or the key is taken by something else.
    #[error("{0}")]
    Mismatch(String),
}

impl From<String> for Cause {
    fn from(s: String) -> Self {
        Self::Mismatch(s)
    }
}

impl Temporary for StorageError {
    fn is_temporary(&self) -> bool {
        use object_store::Error as E;
        match &self.cause {
            Cause::Store(
                E::NotFound { .. }
                | E::AlreadyExists { .. }
                | E::Precondition { .. }
                | E::NotSupported { .. }
                | E::PermissionDenied { .. }
                | E::Unauthenticated { .. }
                | E::UnknownConfigurationKey { .. },
            ) => false,
            Cause::Store(_) => true,
            Cause::Io(e) => io_is_temporary(e),
            Cause::Manifest(_) | Cause::Mismatch(_) => false,
        }
    }
}
