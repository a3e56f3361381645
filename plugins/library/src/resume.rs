//! Range and resume bookkeeping for downloads and uploads (no I/O).
//!
//! The server side of ranges is tower-http's; this is only what a client needs to ask for the
//! rest of a `.part` file and to check that the answer is the rest it asked for, and what the
//! upload endpoint needs to read a `Content-Range`.

/// What to ask the server for, given what is already on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchPlan {
    /// The `.part` file already holds every byte: verify it.
    Complete,
    /// Ask for the bytes from `from` on (`Range: bytes=from-`, or no `Range` from 0).
    From(u64),
    /// The `.part` file is longer than the clip: it is not this clip; start again.
    Restart,
}

/// The plan for a clip of `total` bytes when `have` bytes are in its `.part` file.
pub fn plan(have: u64, total: u64) -> FetchPlan {
    match have.cmp(&total) {
        std::cmp::Ordering::Equal => FetchPlan::Complete,
        std::cmp::Ordering::Less => FetchPlan::From(have),
        std::cmp::Ordering::Greater => FetchPlan::Restart,
    }
}

/// The `Range` header asking for bytes from `from` on (`None` for the whole file).
pub fn range_header(from: u64) -> Option<String> {
    (from > 0).then(|| format!("bytes={from}-"))
}

/// What to do with a response to a request from `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyAction {
    /// Append the body to the `.part` file.
    Append,
    /// The server sent the whole file (200): truncate the `.part` file and write from 0.
    Restart,
}

/// A response that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the server answered {status} to a request for bytes {from}-")]
    Status { status: u16, from: u64 },
    #[error(
        "the server sent Content-Range {got:?} for a request for bytes {from}- of a {total}-byte clip"
    )]
    WrongRange { got: String, from: u64, total: u64 },
    #[error("the server says the clip is {got} bytes; the manifest says {total}")]
    WrongSize { got: u64, total: u64 },
}

/// Checks a response (`status`, its `Content-Range` and `Content-Length`) to a request for
/// the bytes from `from` of a clip of `total` bytes.
pub fn check_reply(
    status: u16,
    content_range: Option<&str>,
    content_length: Option<u64>,
    from: u64,
    total: u64,
) -> Result<ReplyAction, ReplyError> {
    match status {
        200 => match content_length {
            Some(len) if len != total => Err(ReplyError::WrongSize { got: len, total }),
            _ => Ok(if from == 0 {
                ReplyAction::Append
            } else {
                ReplyAction::Restart
            }),
        },
        206 => {
            let got = content_range.unwrap_or("").to_string();
            match parse_content_range(&got) {
                Some(ContentRange {
                    start,
                    end,
                    total: Some(t),
                }) if start == from && end + 1 == total && t == total => Ok(ReplyAction::Append),
                _ => Err(ReplyError::WrongRange { got, from, total }),
            }
        }
        status => Err(ReplyError::Status { status, from }),
    }
}

/// A parsed `Content-Range: bytes start-end/total` (`total` may be `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    /// Inclusive.
    pub end: u64,
    pub total: Option<u64>,
}

impl ContentRange {
    /// Bytes the range covers.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Whether the range is empty (never, once parsed; for clippy's sake).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Parses `bytes start-end/total` or `bytes start-end/*`; `None` if it is anything else or
/// the range is backwards or runs past the total.
pub fn parse_content_range(text: &str) -> Option<ContentRange> {
    let rest = text.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    if end < start || total.is_some_and(|t| end >= t) {
        return None;
    }
    Some(ContentRange { start, end, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_follows_the_part_length() {
        assert_eq!(plan(0, 100), FetchPlan::From(0));
        assert_eq!(plan(40, 100), FetchPlan::From(40));
        assert_eq!(plan(100, 100), FetchPlan::Complete);
        assert_eq!(plan(101, 100), FetchPlan::Restart);
        assert_eq!(range_header(0), None);
        assert_eq!(range_header(40).as_deref(), Some("bytes=40-"));
    }

    #[test]
    fn a_206_must_be_exactly_the_rest() {
        assert_eq!(
            check_reply(206, Some("bytes 40-99/100"), Some(60), 40, 100),
            Ok(ReplyAction::Append)
        );
        for bad in [
            "bytes 0-99/100",
            "bytes 40-98/100",
            "bytes 40-99/101",
            "",
            "junk",
        ] {
            assert!(
                matches!(
                    check_reply(206, Some(bad), None, 40, 100),
                    Err(ReplyError::WrongRange { .. })
                ),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn a_200_restarts_a_resume_and_must_have_the_size() {
        assert_eq!(
            check_reply(200, None, Some(100), 0, 100),
            Ok(ReplyAction::Append)
        );
        assert_eq!(
            check_reply(200, None, Some(100), 40, 100),
            Ok(ReplyAction::Restart)
        );
        assert_eq!(
            check_reply(200, None, Some(99), 0, 100),
            Err(ReplyError::WrongSize {
                got: 99,
                total: 100
            })
        );
        assert_eq!(
            check_reply(416, None, None, 40, 100),
            Err(ReplyError::Status {
                status: 416,
                from: 40
            })
        );
    }

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 0-9/10"),
            Some(ContentRange {
                start: 0,
                end: 9,
                total: Some(10)
            })
        );
        assert_eq!(
            parse_content_range("bytes 5-9/*"),
            Some(ContentRange {
                start: 5,
                end: 9,
                total: None
            })
        );
        assert_eq!(
            parse_content_range("bytes 0-9/10").map(|r| r.len()),
            Some(10)
        );
        for bad in [
            "bytes 9-5/10",
            "bytes 0-10/10",
            "bytes */10",
            "items 0-1/2",
            "bytes 0-/10",
            "bytes -1-2/3",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }
}
