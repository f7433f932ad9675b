//! The error every operation of the host returns: one line for a person, the kind of failure a
//! front end needs (the command line turns it into an exit code, a server into a status), and
//! optional detail (the loader's full report, for `--verbose`). For programs (`--format json`) it
//! may also say what went wrong as a stable name ([`Error::kind`]) and where ([`Location`]);
//! the message names both already, for people.

/// A failure of an operation, reported as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// 1 when the user's input is invalid or names something that does not exist; 2 for
    /// configuration, plugins and storage. (The exit code of the command line.)
    pub code: u8,
    pub message: String,
    /// More, for whoever asks (the loader's full layout report).
    pub detail: Option<String>,
    /// What went wrong as a stable kebab-case name, when more is known than `code` says: see
    /// [`Error::kind`].
    pub specific: Option<String>,
    /// Where the error is, when it is about one place of the input (boxed: most errors have
    /// none, and every `Result` of the host carries the error's size).
    pub location: Option<Box<Location>>,
}

/// Where in the input an error is: any of a file, a line of it, a field or key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The file as the user named it (`<stdin>` for standard input, as messages name it).
    pub file: Option<String>,
    /// The line, counted from 1.
    pub line: Option<u64>,
    /// The field, key or argument, e.g. `scope`, `title`, `context`.
    pub field: Option<String>,
}

impl Error {
    /// The user's input is invalid or names something that does not exist.
    pub fn input(message: impl Into<String>) -> Self {
        Error {
            code: 1,
            message: message.into(),
            detail: None,
            specific: None,
            location: None,
        }
    }

    /// Configuration, plugins or storage.
    pub fn config(message: impl Into<String>) -> Self {
        Error {
            code: 2,
            ..Error::input(message)
        }
    }

    /// Whether the user's input is at fault.
    pub fn is_input(&self) -> bool {
        self.code == 1
    }

    /// What went wrong, for programs: the specific name when one is known (`not-found`,
    /// `conflict`, `damaged`, a stage's error code such as `storage` or `unavailable`, a
    /// validator's problem code such as `unknown-scope`), else `input` (exit code 1) or
    /// `config` (exit code 2).
    pub fn kind(&self) -> &str {
        match (&self.specific, self.is_input()) {
            (Some(kind), _) => kind,
            (None, true) => "input",
            (None, false) => "config",
        }
    }

    /// The same error with a specific [`Error::kind`].
    #[must_use]
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.specific = Some(kind.into());
        self
    }

    /// The same error, about this file (`-` for standard input).
    #[must_use]
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.location.get_or_insert_default().file = Some(file.into());
        self
    }

    /// The same error, about this line of its file.
    #[must_use]
    pub fn at_line(mut self, line: u64) -> Self {
        self.location.get_or_insert_default().line = Some(line);
        self
    }

    /// The same error, about this field, key or argument.
    #[must_use]
    pub fn on_field(mut self, field: impl Into<String>) -> Self {
        self.location.get_or_insert_default().field = Some(field.into());
        self
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
        use registry_core::Error as E;
        let error = if e.is_user_error() {
            Error::input(e.to_string())
        } else {
            Error::config(e.to_string())
        };
        match e {
            E::Request(r) => Error::from(r),
            E::Invalid(problems) => {
                match problems
                    .iter()
                    .find(|p| p.severity == registry_core::Severity::Error)
                {
                    Some(p) => error.with_kind(&p.code).on_field(&p.field),
                    None => error.with_kind("invalid"),
                }
            }
            E::NotFound(_) => error.with_kind("not-found").on_field("id"),
            E::Conflict(_) => error.with_kind("conflict"),
            E::Damaged(_) => error.with_kind("damaged"),
            E::Lifecycle(_) => error.with_kind("lifecycle").on_field("id"),
            E::Stage { error: stage, .. } => error.with_kind(code_name(stage.code)),
            _ => error,
        }
    }
}

/// A stage's error code as a kebab-case name.
fn code_name(code: registry_core::ErrorCode) -> &'static str {
    use registry_core::ErrorCode as C;
    match code {
        C::Invalid => "invalid",
        C::NotFound => "not-found",
        C::Conflict => "conflict",
        C::Config => "config",
        C::Storage => "storage",
        C::Unavailable => "unavailable",
        C::Panic => "panic",
        C::Missing => "missing",
        _ => "internal",
    }
}

impl From<registry_core::RequestError> for Error {
    fn from(e: registry_core::RequestError) -> Self {
        use registry_core::RequestError as R;
        let field = match &e {
            R::EmptyTitle
            | R::InvisibleTitle
            | R::TitleBidi { .. }
            | R::TitleTooLong(_)
            | R::TitleControl(_) => Some("title"),
            R::BadFieldValue { field, .. } => Some(*field),
            R::BadVersion(_) => Some("version"),
            R::MalformedContext(_)
            | R::BadContextKey(_)
            | R::BadContextValue(_)
            | R::DuplicateContextKey(_)
            | R::TooManyContextPairs(_)
            | R::SetAndUnsetContextKey(_)
            | R::UnsetContextKey { .. } => Some("context"),
            _ => None,
        };
        let kind = match e {
            R::UnsetContextKey { .. } => "not-found",
            _ => "invalid",
        };
        let error = Error::input(e.to_string()).with_kind(kind);
        match field {
            Some(field) => error.on_field(field),
            None => error,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_is_the_most_specific_known() {
        assert_eq!(Error::input("x").kind(), "input");
        assert_eq!(Error::config("x").kind(), "config");
        let id: registry_core::EntryId = "SEC-RUL-001".parse().expect("id");
        let e = Error::from(registry_core::Error::NotFound(id.clone()));
        assert_eq!((e.kind(), e.code), ("not-found", 1));
        assert_eq!(
            Error::from(registry_core::Error::Conflict(id)).kind(),
            "conflict"
        );
        let stage = registry_core::Error::stage(
            registry_core::StageKind::Storage,
            registry_core::StageError::new(registry_core::ErrorCode::Unavailable, "down"),
        );
        let e = Error::from(stage);
        assert_eq!((e.kind(), e.code), ("unavailable", 2));
    }

    #[test]
    fn a_request_error_names_its_field() {
        let field = |e: registry_core::RequestError| {
            Error::from(e)
                .location
                .and_then(|l| l.field)
                .expect("a field")
        };
        assert_eq!(field(registry_core::RequestError::EmptyTitle), "title");
        assert_eq!(
            field(registry_core::RequestError::BadVersion("x".into())),
            "version"
        );
        assert_eq!(
            field(registry_core::RequestError::DuplicateContextKey("k".into())),
            "context"
        );
    }

    #[test]
    fn a_location_is_built_up() {
        let e = Error::input("m")
            .in_file("a.jsonl")
            .at_line(3)
            .on_field("scope");
        let at = e.location.expect("location");
        assert_eq!(
            (at.file.as_deref(), at.line, at.field.as_deref()),
            (Some("a.jsonl"), Some(3), Some("scope"))
        );
        assert!(Error::input("m").location.is_none());
    }
}
