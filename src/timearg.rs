//! Time arguments: `10s`, `500ms`, `1m30s`, `1h`, `2.5` (seconds), and `TIME ACTION` pairs.

use std::str::FromStr;

use rockontrol_engine::Command;

/// Parses a duration into seconds.
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return check(secs, text);
    }
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => {
                return Err(format!(
                    "{text:?}: unexpected {c:?}; write e.g. 10s, 500ms, 1m30s"
                ));
            }
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{text:?}: a number must come before each unit"))?;
        total += value * unit;
        number.clear();
        any = true;
    }
    if !number.is_empty() || !any {
        return Err(format!(
            "{text:?}: missing unit; write e.g. 10s, 500ms, 1m30s"
        ));
    }
    check(total, text)
}

fn check(secs: f64, text: &str) -> Result<f64, String> {
    if secs.is_finite() && secs >= 0.0 {
        Ok(secs)
    } else {
        Err(format!("{text:?} is not a time ≥ 0"))
    }
}

/// `'7.5s goto main 3'`: a command at a show time.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedCommand {
    pub seconds: f64,
    pub command: Command,
}

impl FromStr for TimedCommand {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (time, action) = text
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{text:?}: expected 'TIME ACTION', e.g. '5s go main'"))?;
        Ok(TimedCommand {
            seconds: parse_seconds(time)?,
            command: action.parse().map_err(|e| format!("{e}"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_seconds("10s"), Ok(10.0));
        assert_eq!(parse_seconds("7.5s"), Ok(7.5));
        assert_eq!(parse_seconds("500ms"), Ok(0.5));
        assert_eq!(parse_seconds("1m30s"), Ok(90.0));
        assert_eq!(parse_seconds("1h"), Ok(3600.0));
        assert_eq!(parse_seconds("2.5"), Ok(2.5));
        assert!(parse_seconds("10x").is_err());
        assert!(parse_seconds("s").is_err());
        assert!(parse_seconds("-1").is_err());
    }

    #[test]
    fn timed_commands() {
        let t: TimedCommand = "7.5s goto main 3".parse().expect("parses");
        assert_eq!(t.seconds, 7.5);
        assert_eq!(t.command.to_string(), "goto main 3");
        assert!("5s".parse::<TimedCommand>().is_err());
        assert!("5s jump".parse::<TimedCommand>().is_err());
    }
}
