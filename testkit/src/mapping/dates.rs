//! Dates: a date field's formats (`strict_date_optional_time`, `epoch_millis`, `yyyy/MM/dd`…), what each parses, and
//! the dynamic date detection of a new string field.

use std::fmt;

/// One format of a date field's `format` (`a||b` tries each in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateFormat {
    StrictDateOptionalTime,
    EpochMillis,
    EpochSecond,
    /// `yyyy/MM/dd HH:mm:ss`
    SlashDateTime,
    /// `yyyy/MM/dd`
    SlashDate,
}

impl DateFormat {
    const ALL: [(DateFormat, &'static str); 5] = [
        (DateFormat::StrictDateOptionalTime, "strict_date_optional_time"),
        (DateFormat::EpochMillis, "epoch_millis"),
        (DateFormat::EpochSecond, "epoch_second"),
        (DateFormat::SlashDateTime, "yyyy/MM/dd HH:mm:ss"),
        (DateFormat::SlashDate, "yyyy/MM/dd"),
    ];

    fn name(self) -> &'static str {
        DateFormat::ALL.iter().find(|(format, _)| *format == self).map(|(_, name)| *name).expect("every format named")
    }

    fn parses(self, text: &str) -> bool {
        match self {
            DateFormat::StrictDateOptionalTime => is_strict_date_optional_time(text),
            DateFormat::EpochMillis | DateFormat::EpochSecond => is_epoch(text),
            DateFormat::SlashDateTime => {
                text.len() == 19 && is_slash_date(&text[..10]) && text.as_bytes()[10] == b' ' && is_time(&text[11..])
            }
            DateFormat::SlashDate => is_slash_date(text),
        }
    }
}

/// A date field's formats, tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormats(Vec<DateFormat>);

impl DateFormats {
    /// `strict_date_optional_time||epoch_millis`: an explicit date field's default, and what a string detected by the
    /// first dynamic date format gets.
    pub(super) fn iso() -> DateFormats {
        DateFormats(vec![DateFormat::StrictDateOptionalTime, DateFormat::EpochMillis])
    }

    /// `yyyy/MM/dd HH:mm:ss||yyyy/MM/dd||epoch_millis`: the second of `RootObjectMapper`'s dynamic date formats.
    fn slashes() -> DateFormats {
        DateFormats(vec![DateFormat::SlashDateTime, DateFormat::SlashDate, DateFormat::EpochMillis])
    }

    pub(super) fn parse(format: &str) -> Result<DateFormats, String> {
        format
            .split("||")
            .map(|name| {
                DateFormat::ALL
                    .iter()
                    .find(|(_, known)| *known == name)
                    .map(|(format, _)| *format)
                    .ok_or_else(|| format!("the double does not know the date format [{name}]"))
            })
            .collect::<Result<_, _>>()
            .map(DateFormats)
    }

    pub(super) fn parses(&self, text: &str) -> bool {
        self.0.iter().any(|format| format.parses(text))
    }
}

impl fmt::Display for DateFormats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|format| format.name()).collect();
        f.write_str(&names.join("||"))
    }
}

/// The dynamic date formats a new string field is tried against, in order (`RootObjectMapper`'s defaults), except
/// for pure numbers, which "are too likely to be false positives" (`DynamicFieldsBuilder`).
pub(super) fn dynamic_date(text: &str) -> Option<DateFormats> {
    if text.parse::<i64>().is_ok() || text.parse::<f64>().is_ok() {
        return None;
    }
    if is_strict_date_optional_time(text) {
        Some(DateFormats::iso())
    } else if DateFormat::SlashDateTime.parses(text) || DateFormat::SlashDate.parses(text) {
        Some(DateFormats::slashes())
    } else {
        None
    }
}

/// `epoch_millis` / `epoch_second`: an optionally negative number, optionally with a fraction.
fn is_epoch(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()) && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// `digits` ASCII digits read as a number within `range`.
fn number_in(text: &str, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|n| range.contains(n))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `yyyy-MM-dd`, `yyyy-MM` or `yyyy`, each part of its exact width and valid (a strict resolver).
fn is_iso_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let widths_ok = matches!(parts.as_slice(), [y] if y.len() == 4)
        || matches!(parts.as_slice(), [y, m] if y.len() == 4 && m.len() == 2)
        || matches!(parts.as_slice(), [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2);
    if !widths_ok {
        return false;
    }
    let Some(year) = number_in(parts[0], 0..=9999) else { return false };
    let Some(month) = parts.get(1).map_or(Some(1), |month| number_in(month, 1..=12)) else { return false };
    parts.get(2).is_none_or(|day| number_in(day, 1..=days_in_month(year, month)).is_some())
}

/// `HH[:mm[:ss[(.|,)fraction]]]` (`partial` false requires all of `HH:mm:ss`, without a fraction).
fn is_iso_time(text: &str, partial: bool) -> bool {
    let (clock, fraction) = match text.find(['.', ',']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let ranges = [0..=23, 0..=59, 0..=59];
    let fields_ok = parts.len() <= 3
        && (partial || parts.len() == 3)
        && parts.iter().zip(ranges).all(|(part, range)| part.len() == 2 && number_in(part, range).is_some());
    let fraction_ok = fraction.is_none_or(|digits| {
        parts.len() == 3 && (1..=9).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    });
    fields_ok && fraction_ok
}

fn is_time(text: &str) -> bool {
    is_iso_time(text, false) && !text.contains(['.', ','])
}

/// `Z`, `+HH:MM`, `+HHmm` or `+HH` (and `-`).
fn is_zone(zone: &str) -> bool {
    if zone == "Z" {
        return true;
    }
    let Some(offset) = zone.strip_prefix(['+', '-']) else { return false };
    let (hours, minutes) = match offset.len() {
        2 => (offset, "00"),
        4 => (&offset[..2], &offset[2..]),
        5 if offset.as_bytes()[2] == b':' => (&offset[..2], &offset[3..]),
        _ => return false,
    };
    number_in(hours, 0..=18).is_some() && number_in(minutes, 0..=59).is_some()
}

/// `strict_date_optional_time`: `yyyy[-MM[-dd]]`, then optionally a literal `T` (never a space) and
/// `HH[:mm[:ss[(.|,)fraction]]]` with an optional zone; the whole text consumed.
pub fn is_strict_date_optional_time(text: &str) -> bool {
    let Some((date, time)) = text.split_once('T') else { return is_iso_date(text) };
    if date.len() != 10 || !is_iso_date(date) {
        return false;
    }
    let zone_at = time.find(['Z', '+', '-']).unwrap_or(time.len());
    let (clock, zone) = time.split_at(zone_at);
    is_iso_time(clock, true) && (zone.is_empty() || is_zone(zone))
}

/// `yyyy/MM/dd`.
fn is_slash_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    let [year, month, day] = parts.as_slice() else { return false };
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return false;
    }
    let (Some(year), Some(month)) = (number_in(year, 0..=9999), number_in(month, 1..=12)) else { return false };
    number_in(day, 1..=days_in_month(year, month)).is_some()
}
