//! Log setup: level from `RUST_LOG` (else `AWS_LAMBDA_LOG_LEVEL`, else INFO), JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; call once, first thing at cold start.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|level| level.to_lowercase()))
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    // Lambda stamps every line itself; no ANSI colours in CloudWatch.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).without_time().with_target(false);
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.init();
    }
}
