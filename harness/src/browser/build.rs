//! Builds of one browser side by side: a build is an engine and, when several builds of it are
//! measured in one run (`--chromium stable=… --chromium candidate=…`), its label.

use std::fmt;

/// The name of one build of a browser in a run, e.g. `stable`, `candidate`, `beta-148`: 1 to
/// [`Label::MAX_LEN`] characters of `a`–`z`, `0`–`9`, `.`, `_` and `-`, starting with a letter
/// or digit. It is part of the cell's key, the matrix column (`chromium@candidate`) and the
/// trial folders' names, so nothing else is allowed in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(String);

impl Label {
    /// The longest label.
    pub const MAX_LEN: usize = 32;

    /// Checks `text` is a label.
    pub fn parse(text: &str) -> Result<Self, String> {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
        let starts_well = text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !starts_well || text.len() > Self::MAX_LEN || !text.chars().all(allowed) {
            return Err(format!(
                "`{text}` is not a label: use 1 to {} characters of a-z, 0-9, `.`, `_` and `-`, starting with a letter or digit (e.g. `stable`, `candidate`, `beta-148`)",
                Self::MAX_LEN
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The label's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One build of a browser in a run: the engine, and its label when several builds of the
/// engine are measured side by side. Without a label it is the browser as it always was (one
/// build per engine, and the same files as before labels existed).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrowserBuild {
    /// The engine.
    pub kind: super::BrowserKind,
    /// The build's label, if builds of this engine are labelled.
    pub label: Option<Label>,
}

impl BrowserBuild {
    /// The engine's only build (no label).
    pub fn unlabelled(kind: super::BrowserKind) -> Self {
        Self { kind, label: None }
    }
}

impl From<super::BrowserKind> for BrowserBuild {
    fn from(kind: super::BrowserKind) -> Self {
        Self::unlabelled(kind)
    }
}

/// `chromium`, or `chromium@candidate`: the matrix column, and the key of the environment's
/// browser versions (`results::browser_column`).
impl fmt::Display for BrowserBuild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&results::browser_column(
            self.kind.as_str(),
            self.label.as_ref().map(Label::as_str),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser::BrowserKind;

    #[test]
    fn labels_are_short_plain_names() {
        for good in [
            "stable",
            "candidate",
            "beta-148",
            "v148.0.7778.5",
            "a",
            "9_x",
        ] {
            assert_eq!(Label::parse(good).unwrap().as_str(), good);
        }
        let long = "x".repeat(Label::MAX_LEN + 1);
        for bad in [
            "",
            "-x",
            ".x",
            "Stable",
            "can didate",
            "a/b",
            "a@b",
            "a=b",
            "a,b",
            "über",
            &long,
        ] {
            let e = Label::parse(bad).unwrap_err();
            assert!(e.contains(&format!("`{bad}` is not a label")), "{e}");
        }
    }

    #[test]
    fn a_build_is_named_like_its_matrix_column() {
        assert_eq!(
            BrowserBuild::from(BrowserKind::Firefox).to_string(),
            "firefox"
        );
        let b = BrowserBuild {
            kind: BrowserKind::Chromium,
            label: Some(Label::parse("candidate").unwrap()),
        };
        assert_eq!(b.to_string(), "chromium@candidate");
    }
}
