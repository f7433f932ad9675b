//! The error every operation of the host returns: one line for a person, the kind of failure a
//! front end needs (the command line turns it into an exit code, a server into a status), and
//! optional detail (the loader's full report, for `--verbose`).

/// A failure of an operation, reported as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// 1 when the user's input is invalid or names something that does not exist; 2 for
    /// configuration, plugins and storage. (The exit code of the command line.)
    pub code: u8,
    pub message: String,
    /// More, for whoever asks (the loader's full layout report).
    pub detail: Option<String>,
}

impl Error {
    /// The user's input is invalid or names something that does not exist.
    pub fn input(message: impl Into<String>) -> Self {
        Error {
            code: 1,
            message: message.into(),
            detail: None,
        }
    }

    /// Configuration, plugins or storage.
    pub fn config(message: impl Into<String>) -> Self {
        Error {
            code: 2,
            message: message.into(),
            detail: None,
        }
    }

    /// Whether the user's input is at fault.
    pub fn is_input(&self) -> bool {
        self.code == 1
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<registry_core::Error> for Error {
    fn from(e: registry_core::Error) -> Self {
        if e.is_user_error() {
            Error::input(e.to_string())
        } else {
            Error::config(e.to_string())
        }
    }
}

impl From<registry_core::RequestError> for Error {
    fn from(e: registry_core::RequestError) -> Self {
        Error::input(e.to_string())
    }
}

/// The OS reason without Rust's "(os error N)" suffix, lowercased like every other message.
pub fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text.to_owned(),
    }
}
