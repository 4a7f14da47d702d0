//! The crate's error type.

use std::path::PathBuf;

use crate::validate::ValidationError;

/// Why a topology could not be loaded. Every variant is the user's to fix (a missing file, a
/// syntax error, a bad value); retrying without changing the file or environment cannot help.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("cannot read topology file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The text is not valid TOML or does not fit the model (unknown field, wrong type). The
    /// message is toml's: it names the line, column and field.
    #[error("{origin}: {error}")]
    Parse {
        /// Where the text came from: the file path, or `topology` for a string.
        origin: String,
        /// toml's error, with line and column.
        error: toml::de::Error,
    },
    /// The topology parsed but breaks rules; every problem is listed with its field path.
    #[error("{origin}: {}", list(.errors))]
    Invalid {
        /// Where the text came from: the file path, or `topology` for a string.
        origin: String,
        /// Every problem found.
        errors: Vec<ValidationError>,
    },
}

fn list(errors: &[ValidationError]) -> String {
    let mut text = format!(
        "invalid topology ({} problem{}):",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for error in errors {
        text.push_str("\n  - ");
        text.push_str(&error.to_string());
    }
    text
}

impl TopologyError {
    /// The validation problems, empty for I/O and parse errors.
    pub fn validation_errors(&self) -> &[ValidationError] {
        match self {
            Self::Invalid { errors, .. } => errors,
            Self::Io { .. } | Self::Parse { .. } => &[],
        }
    }
}
