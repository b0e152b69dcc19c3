//! Invocation-level failures: the few things that stop the function itself (per-record problems are outcomes).

use crate::config::ConfigError;

/// A failure of the function, not of a record: it stops the cold start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("client: {0}")]
    Client(String),
}

impl Error {
    /// The error type Lambda shows (`errorType`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "ConfigurationError",
            Error::Client(_) => "ClientError",
        }
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(error: Error) -> lambda_runtime::Diagnostic {
        lambda_runtime::Diagnostic { error_type: error.kind().to_owned(), error_message: error.to_string() }
    }
}

/// An error and its causes on one line: reqwest's own message rarely says what went wrong.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
