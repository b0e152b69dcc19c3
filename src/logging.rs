//! Log setup: level from `RUST_LOG` (else `AWS_LAMBDA_LOG_LEVEL`, else INFO), JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`,
//! and the level of the lines the stack's metrics are made of.
//! Every line of an invocation carries its request id: the runtime wraps each invocation in a span
//! (`Lambda runtime invoke`, field `requestId`), shown as `span` in JSON and as a prefix in text. Every JSON line
//! carries `level` and an RFC 3339 `timestamp`: Lambda's log-level filtering reads both, and takes a line without a
//! valid timestamp for INFO, which a WARN setting would drop, ERROR lines included.

use tracing::Level;
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
    // No ANSI colours in CloudWatch. A text line is stamped by Lambda; a JSON line names its own time, which
    // Lambda's level filtering needs (RFC 3339, UTC, microseconds).
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(false).with_target(false);
    if json {
        builder
            .with_timer(tracing_subscriber::fmt::time::SystemTime)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.without_time().init();
    }
}

/// How severe a level is, as far as raising a line goes: ERROR, WARN, then everything else.
fn severity(level: Level) -> u8 {
    match level {
        Level::ERROR => 2,
        Level::WARN => 1,
        _ => 0,
    }
}

/// The level Lambda keeps lines from, as `AWS_LAMBDA_LOG_LEVEL` (the template's `LogLevel`) names it, as far as it
/// raises a line: WARN or ERROR (FATAL as ERROR); anything else keeps lines at INFO and above, as INFO does.
fn level_named(named: &str) -> Level {
    match lambda_level_directive(named.trim()).as_str() {
        "warn" => Level::WARN,
        "error" => Level::ERROR,
        _ => Level::INFO,
    }
}

/// The more severe of `own` and `configured`.
fn raised(own: Level, configured: Level) -> Level {
    [own, configured].into_iter().max_by_key(|level| severity(*level)).unwrap_or(own)
}

/// The level of a line the stack's metrics and alarms are made of (the summary, the saturation warning): its own,
/// raised to the configured level when that is higher, so that no allowed `LogLevel` drops it and silences the
/// alarms that read it. At `LogLevel` WARN the summary is a WARN line; its message still says what it is.
pub fn kept_level(own: Level) -> Level {
    static CONFIGURED: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    let configured =
        *CONFIGURED.get_or_init(|| level_named(&std::env::var("AWS_LAMBDA_LOG_LEVEL").unwrap_or_default()));
    raised(own, configured)
}

/// A `tracing` event at a level chosen when it is written (`tracing`'s macros take a constant one): ERROR, WARN, or
/// INFO for anything more detailed.
#[macro_export]
macro_rules! event_at {
    ($level:expr, $($fields:tt)+) => {
        match $level {
            ::tracing::Level::ERROR => ::tracing::event!(::tracing::Level::ERROR, $($fields)+),
            ::tracing::Level::WARN => ::tracing::event!(::tracing::Level::WARN, $($fields)+),
            _ => ::tracing::event!(::tracing::Level::INFO, $($fields)+),
        }
    };
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
    fn a_metric_line_is_raised_to_the_configured_level_and_never_lowered() {
        use tracing::Level;
        for (configured, own, kept) in [
            ("", Level::INFO, Level::INFO),
            ("DEBUG", Level::INFO, Level::INFO),
            ("TRACE", Level::WARN, Level::WARN),
            ("WARN", Level::INFO, Level::WARN),
            ("ERROR", Level::INFO, Level::ERROR),
            ("FATAL", Level::WARN, Level::ERROR),
            ("INFO", Level::WARN, Level::WARN),
            ("warn", Level::INFO, Level::WARN),
        ] {
            assert_eq!(super::raised(own, super::level_named(configured)), kept, "{configured:?} {own}");
        }
    }

    #[test]
    fn lambda_log_levels_become_tracing_filters() {
        assert_eq!(super::lambda_level_directive("WARN"), "warn");
        assert_eq!(super::lambda_level_directive("FATAL"), "error");
        for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] {
            assert!(tracing_subscriber::EnvFilter::try_new(super::lambda_level_directive(level)).is_ok(), "{level}");
        }
    }
}
