//! The one error type shared by every identifier parser.

use std::fmt;

/// Which identifier (or identifier-like value) an [`IdentError`] is about.
///
/// Its `Display` is the name used in messages: "resident ID", "credit code", ...
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentKind {
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An 18-character resident ID (GB 11643-1999).
    ResidentId,
    /// An 18-character unified social credit code (GB 32100-2015).
    CreditCode,
    /// A department ID such as `gov.sz.amr`.
    DeptId,
    /// A dataset ID such as `gov.sz.psb/population`.
    DatasetId,
    /// A licence number.
    LicenceId,
    /// A purpose code (事项编码).
    PurposeCode,
    /// The free-text reason of a query (申请事由).
    Reason,
    /// A caller-supplied trace ID.
    TraceId,
    /// A schema reference such as `std.licence.business@1`.
    SchemaRef,
    /// The name of a field in a schema.
    FieldName,
}

impl IdentKind {
    /// The name used in messages, e.g. "resident ID".
    pub fn name(self) -> &'static str {
        match self {
            Self::Date => "date",
            Self::ResidentId => "resident ID",
            Self::CreditCode => "credit code",
            Self::DeptId => "department ID",
            Self::DatasetId => "dataset ID",
            Self::LicenceId => "licence number",
            Self::PurposeCode => "purpose code",
            Self::Reason => "reason (申请事由)",
            Self::TraceId => "trace ID",
            Self::SchemaRef => "schema reference",
            Self::FieldName => "field name",
        }
    }
}

impl fmt::Display for IdentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A range of character positions in the text that was parsed, 1-based and inclusive,
/// counted in Unicode characters (not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    /// The first character, 1-based.
    pub start: usize,
    /// The last character, 1-based, inclusive (equal to `start` for a single character).
    pub end: usize,
}

impl Span {
    /// A span of the single character at 1-based `position`.
    pub fn at(position: usize) -> Self {
        Self { start: position, end: position }
    }

    /// A span from `start` to `end`, 1-based and inclusive.
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "character {}", self.start)
        } else {
            write!(f, "characters {}-{}", self.start, self.end)
        }
    }
}

/// Why a text is not a valid identifier.
///
/// The `Display` text is written for the person who sent the value: it names the identifier,
/// the 1-based character position(s) at fault and what was expected, so a gRPC layer can
/// answer `INVALID_ARGUMENT` with it as the message (prefixed with the request field name).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    /// The text is empty (or only whitespace, for a [`Reason`](super::Reason)).
    #[error("{}", empty_message(*ident))]
    Empty {
        /// The identifier that was expected.
        ident: IdentKind,
    },
    /// The text must have an exact number of characters and does not.
    #[error("the {ident} must be exactly {expected} characters long, got {actual}")]
    WrongLength {
        /// The identifier that was expected.
        ident: IdentKind,
        /// The required number of characters.
        expected: usize,
        /// The number of characters received.
        actual: usize,
    },
    /// The text is shorter than the minimum.
    #[error("the {ident} is {} long, the minimum is {min}", characters(*actual))]
    TooShort {
        /// The identifier that was expected.
        ident: IdentKind,
        /// The minimum number of characters.
        min: usize,
        /// The number of characters received.
        actual: usize,
    },
    /// The text is longer than the limit.
    #[error("the {ident} is {} long, the limit is {max}", characters(*actual))]
    TooLong {
        /// The identifier that was expected.
        ident: IdentKind,
        /// The maximum number of characters.
        max: usize,
        /// The number of characters received.
        actual: usize,
    },
    /// One character is not allowed where it is.
    #[error("character {position} of the {ident} is {found:?}, {rule}")]
    BadChar {
        /// The identifier that was expected.
        ident: IdentKind,
        /// 1-based character position.
        position: usize,
        /// The character found there.
        found: char,
        /// What the rule is, phrased to follow the character, e.g. "expected a digit".
        rule: &'static str,
    },
    /// The check character does not match the other characters: at least one of them was
    /// mistyped.
    #[error("character {position} of the {ident} is {found:?}, the check character should be {expected:?}")]
    CheckChar {
        /// The identifier that was expected.
        ident: IdentKind,
        /// 1-based position of the check character.
        position: usize,
        /// The check character received.
        found: char,
        /// The check character computed from the other characters.
        expected: char,
    },
    /// A group of characters (a date, a region code, a version) is well-formed character by
    /// character but does not mean anything valid.
    #[error("{span} of the {ident} {} '{text}': {reason}", if span.start == span.end { "is" } else { "are" })]
    BadPart {
        /// The identifier that was expected.
        ident: IdentKind,
        /// The characters at fault.
        span: Span,
        /// The characters at fault, as received.
        text: String,
        /// Why they are not valid, e.g. "13 is not a month".
        reason: String,
    },
    /// The text does not have the overall shape of the identifier.
    #[error("the {ident} {reason}")]
    Malformed {
        /// The identifier that was expected.
        ident: IdentKind,
        /// What is wrong, phrased to follow the identifier's name, e.g. "must look like ...".
        reason: String,
    },
}

/// "1 character", "2 characters".
pub(crate) fn characters(n: usize) -> String {
    if n == 1 { "1 character".into() } else { format!("{n} characters") }
}

fn empty_message(ident: IdentKind) -> String {
    match ident {
        IdentKind::Reason => "a reason (申请事由) is required: say why the data is needed".into(),
        other => format!("the {other} is empty"),
    }
}

impl IdentError {
    /// The identifier this error is about.
    pub fn ident(&self) -> IdentKind {
        match self {
            Self::Empty { ident }
            | Self::WrongLength { ident, .. }
            | Self::TooShort { ident, .. }
            | Self::TooLong { ident, .. }
            | Self::BadChar { ident, .. }
            | Self::CheckChar { ident, .. }
            | Self::BadPart { ident, .. }
            | Self::Malformed { ident, .. } => *ident,
        }
    }

    /// The characters at fault, when the error is about particular characters.
    pub fn span(&self) -> Option<Span> {
        match self {
            Self::BadChar { position, .. } | Self::CheckChar { position, .. } => Some(Span::at(*position)),
            Self::BadPart { span, .. } => Some(*span),
            Self::Empty { .. }
            | Self::WrongLength { .. }
            | Self::TooShort { .. }
            | Self::TooLong { .. }
            | Self::Malformed { .. } => None,
        }
    }

    pub(crate) fn bad_char(ident: IdentKind, position: usize, found: char, rule: &'static str) -> Self {
        Self::BadChar { ident, position, found, rule }
    }

    pub(crate) fn bad_part(ident: IdentKind, span: Span, text: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::BadPart { ident, span, text: text.into(), reason: reason.into() }
    }

    pub(crate) fn malformed(ident: IdentKind, reason: impl Into<String>) -> Self {
        Self::Malformed { ident, reason: reason.into() }
    }
}
