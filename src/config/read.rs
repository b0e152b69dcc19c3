//! The readers of a variable's value: whole numbers within a range, and durations in milliseconds.

use std::time::Duration;

use super::{ConfigError, problem};

/// A whole number from `min` to `max` (`_` may separate its digits); `default` when the variable is unset.
pub(super) fn number<T>(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(text) = get(variable) else { return Ok(default) };
    let value: T = text
        .replace('_', "")
        .parse()
        .map_err(|_| problem(variable, format!("expects a whole number from {min} to {max}, got {text:?}")))?;
    if value < min || value > max {
        return Err(problem(variable, format!("expects a whole number from {min} to {max}, got {value}")));
    }
    Ok(value)
}

/// A duration in whole milliseconds from `min` to `max` (`number`'s range and messages).
pub(super) fn millis(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    number(get, variable, default, min, max).map(Duration::from_millis)
}
