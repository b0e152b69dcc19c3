//! The readers of a variable's value: whole numbers within a range.

use super::{ConfigError, problem};

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
