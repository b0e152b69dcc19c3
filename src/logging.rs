//! Log setup: level from `RUST_LOG` (else `AWS_LAMBDA_LOG_LEVEL`, else INFO), JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`.
//! Every line of an invocation carries its request id: the runtime wraps each invocation in a span
//! (`Lambda runtime invoke`, field `requestId`), shown as `span` in JSON and as a prefix in text.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber writing to stdout, where Lambda reads it; call once, first thing at cold start.
pub fn init() {
    init_writing_to(std::io::stdout);
}

/// Installs the global subscriber writing to `writer` (the replay tool keeps stdout for its results).
pub fn init_writing_to<W>(writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|level| lambda_level_directive(&level)))
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    // Lambda stamps every line itself; no ANSI colours in CloudWatch.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .without_time()
        .with_target(false);
    if json {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init();
    } else {
        builder.init();
    }
}

/// Lambda's application log levels as a tracing filter (`FATAL` has no tracing level: ERROR is the closest).
fn lambda_level_directive(level: &str) -> String {
    match level.to_ascii_lowercase().as_str() {
        "fatal" => "error".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lambda_log_levels_become_tracing_filters() {
        assert_eq!(super::lambda_level_directive("WARN"), "warn");
        assert_eq!(super::lambda_level_directive("FATAL"), "error");
        for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] {
            assert!(tracing_subscriber::EnvFilter::try_new(super::lambda_level_directive(level)).is_ok(), "{level}");
        }
    }
}
