//! The steps of a trial.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One user action in a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Navigate to the server's URL.
    Visit,
    /// Click through the certificate warning.
    Proceed,
    /// Navigate to the same URL again in the same session.
    Revisit,
}

impl Step {
    /// `visit`, `proceed`, `revisit`.
    pub fn as_str(self) -> &'static str {
        StepAction::from(self).as_str()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a measured step of a trial was: a scenario's step, or the teardown after the last one
/// (where connections that arrive while the browser closes are counted, not dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepAction {
    /// [`Step::Visit`].
    Visit,
    /// [`Step::Proceed`].
    Proceed,
    /// [`Step::Revisit`].
    Revisit,
    /// After the last step, until the server stopped.
    Teardown,
}

impl StepAction {
    /// `visit`, `proceed`, `revisit`, `teardown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visit => "visit",
            Self::Proceed => "proceed",
            Self::Revisit => "revisit",
            Self::Teardown => "teardown",
        }
    }
}

impl From<Step> for StepAction {
    fn from(step: Step) -> Self {
        match step {
            Step::Visit => Self::Visit,
            Step::Proceed => Self::Proceed,
            Step::Revisit => Self::Revisit,
        }
    }
}

impl fmt::Display for StepAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
