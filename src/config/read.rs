//! The readers of a variable's value: whole numbers within a range, durations in milliseconds, and choices (one
//! word of a few, booleans among them), read one way wherever a setting is one of a few words.

use std::time::Duration;

use super::ConfigError;

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
        .map_err(|_| ConfigError::new(variable, format!("expects a whole number from {min} to {max}, got {text:?}")))?;
    if value < min || value > max {
        return Err(ConfigError::new(variable, format!("expects a whole number from {min} to {max}, got {value}")));
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

/// A setting that is one of a few words: `choices`' value for the word `variable` is set to, read as `word` reads
/// it (case does not matter); `None` when it is unset. Any other word is refused with the words allowed, in the
/// order of `choices`: `expects merge, nest or off, got "yes"`.
pub(crate) fn choice<T: Copy>(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    choices: &[(&str, T)],
) -> Result<Option<T>, ConfigError> {
    let Some(word) = word(get, variable) else { return Ok(None) };
    match choices.iter().find(|(allowed, _)| *allowed == word) {
        Some((_, value)) => Ok(Some(*value)),
        None => {
            let allowed: Vec<&str> = choices.iter().map(|(allowed, _)| *allowed).collect();
            Err(ConfigError::new(variable, format!("expects {}, got {word:?}", either(&allowed))))
        }
    }
}

/// `true` or `false` (`choice`'s reading and message); `default` when unset.
pub(crate) fn boolean(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    Ok(choice(get, variable, &[("true", true), ("false", false)])?.unwrap_or(default))
}

/// The word a choice is read as: the value trimmed and lowercased; `None` when unset.
pub(crate) fn word(get: &impl Fn(&str) -> Option<String>, variable: &str) -> Option<String> {
    get(variable).map(|value| value.trim().to_ascii_lowercase())
}

/// `a`, `a or b`, `a, b or c`.
fn either(words: &[&str]) -> String {
    match words {
        [init @ .., last] if !init.is_empty() => format!("{} or {last}", init.join(", ")),
        _ => words.concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(variable: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |name| (name == variable).then(|| value.to_owned())
    }

    #[test]
    fn a_choice_is_read_trimmed_and_lowercased_and_a_refusal_lists_the_words_in_order() {
        let words = [("merge", 1), ("nest", 2), ("off", 3)];
        assert_eq!(choice(&one("MODE", " NeSt "), "MODE", &words), Ok(Some(2)));
        assert_eq!(choice(&one("OTHER", "nest"), "MODE", &words), Ok(None), "unset");
        let refused = choice(&one("MODE", "Yes"), "MODE", &words).unwrap_err();
        assert_eq!(refused.to_string(), r#"MODE: expects merge, nest or off, got "yes""#);
        let two = choice(&one("MODE", "x"), "MODE", &[("gzip", 1), ("none", 2)]).unwrap_err();
        assert_eq!(two.problem, r#"expects gzip or none, got "x""#);
    }

    #[test]
    fn a_boolean_is_true_or_false_with_its_default_when_unset() {
        assert_eq!(boolean(&one("FLAG", "TRUE"), "FLAG", false), Ok(true));
        assert_eq!(boolean(&one("OTHER", "false"), "FLAG", true), Ok(true));
        assert_eq!(boolean(&one("FLAG", "1"), "FLAG", false).unwrap_err().problem, r#"expects true or false, got "1""#);
    }
}
