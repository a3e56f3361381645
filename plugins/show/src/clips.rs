//! The show's media clips: a human name for each content-addressed clip id.
//!
//! The show names clips; the bytes live in the media library (`rockontrol-library`), found by
//! id, the BLAKE3 of the clip. So the RON stays small and diffable:
//!
//! ```ron
//! clips: [
//!     (name: "intro", id: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"),
//! ],
//! ```
//!
//! Media layers (and cues) refer to clips by name.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::validate::ValidationError;

/// Hex digits in a clip id.
pub const CLIP_ID_HEX_LEN: usize = 64;

/// A clip the show uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clip {
    /// What people, media layers and cues call it; unique in the show.
    pub name: String,
    /// The clip's id in the media library: 64 lowercase hex digits (BLAKE3 of its bytes).
    pub id: String,
}

/// Whether `id` is spelled as a clip id (64 lowercase hex digits).
pub fn is_clip_id(id: &str) -> bool {
    id.len() == CLIP_ID_HEX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every problem with the show's clips: empty or duplicate names, malformed ids.
pub(crate) fn check_clips(clips: &[Clip], errors: &mut Vec<ValidationError>) {
    let mut names = BTreeSet::new();
    for clip in clips {
        if clip.name.trim().is_empty() {
            errors.push(ValidationError::Clip {
                name: clip.name.clone(),
                message: "a clip needs a name".into(),
            });
        } else if !names.insert(clip.name.as_str()) {
            errors.push(ValidationError::Clip {
                name: clip.name.clone(),
                message: "this name is used by another clip (names must be unique)".into(),
            });
        }
        if !is_clip_id(&clip.id) {
            errors.push(ValidationError::Clip {
                name: clip.name.clone(),
                message: format!(
                    "id {:?} is not a clip id: {CLIP_ID_HEX_LEN} lowercase hex digits, as `rockontrol media list` prints",
                    clip.id
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_show, to_ron_string, validate};

    const ID: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    #[test]
    fn a_show_without_clips_loads_and_writes_none() {
        let show = parse_show("(name: \"x\")", "t.ron").expect("parses");
        assert!(show.clips.is_empty());
        let text = to_ron_string(&show);
        assert!(
            !text.contains("clips"),
            "an empty clip table is not written:\n{text}"
        );
    }

    #[test]
    fn clips_round_trip_and_validate() {
        let text = format!("(name: \"x\", clips: [(name: \"intro\", id: \"{ID}\")])");
        let show = parse_show(&text, "t.ron").expect("parses");
        assert_eq!(
            show.clips,
            vec![Clip {
                name: "intro".into(),
                id: ID.into()
            }]
        );
        assert_eq!(validate(&show), Ok(()));
        let again = parse_show(&to_ron_string(&show), "t.ron").expect("re-parses");
        assert_eq!(again.clips, show.clips);
    }

    #[test]
    fn bad_clips_are_each_reported_by_name() {
        let text = format!(
            "(name: \"x\", clips: [(name: \"a\", id: \"{ID}\"), (name: \"a\", id: \"../etc/passwd\"), (name: \" \", id: \"{ID}\")])"
        );
        let show = parse_show(&text, "t.ron").expect("parses");
        let errors: Vec<String> = validate(&show)
            .expect_err("three problems")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(
            errors[0].contains("clip \"a\"") && errors[0].contains("unique"),
            "{errors:#?}"
        );
        assert!(
            errors[1].contains("\"../etc/passwd\" is not a clip id"),
            "{errors:#?}"
        );
        assert!(errors[2].contains("needs a name"), "{errors:#?}");
    }
}
