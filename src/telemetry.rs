//! Process logging with `tracing`, and the one escaping step for text that reaches a log line.
//!
//! The host logs a custom handler's stderr as errors (`UseStdErrorStreamForErrorsOnly`,
//! docs/protocol/functions-host.md §5.3), so warnings and errors go to stderr and everything else
//! to stdout. No ANSI colours: the output lands in host logs, not a terminal.
//!
//! Logs are the audit trail, so a caller must not be able to forge a line: every line written,
//! to `Logs` (`functions::InvocationLog`) or to the process log (the writer below), has
//! its control and line-separator characters escaped by [`escape_controls`].

use std::borrow::Cow;
use std::io::{self, Write};

use tracing::Metadata;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` filter.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let writer = std::io::stderr
        .with_max_level(tracing::Level::WARN)
        .or_else(std::io::stdout);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(OneLinePerEvent(writer))
        .with_ansi(false)
        .with_target(false)
        // The Functions host (and the host emulator) timestamps every line it captures from
        // the handler; a second timestamp would only make each line longer.
        .without_time()
        .init();
}

/// True for the characters that can end, rewrite or hide part of a log line: C0 and C1
/// controls (CR, LF, ESC, NUL, NEL U+0085, ...), DEL, the Unicode line and paragraph
/// separators U+2028 and U+2029, and the bidirectional controls (U+061C, U+200E/F,
/// U+202A-U+202E, U+2066-U+2069), which reorder how the rest of a line displays.
pub fn is_unsafe_in_log(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{2028}' | '\u{2029}' | '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Whether `text` has any [`is_unsafe_in_log`] character. Printable ASCII (most ids, URLs and
/// tokens) is answered from its bytes, without the per-character test: 64 bytes at a time with
/// no early exit inside a block, which the compiler turns into vector compares (an early-exit
/// byte loop over a negotiate answer was 2 % of the in-process negotiate profile).
pub fn has_unsafe_in_log(text: &str) -> bool {
    let printable_ascii = text.as_bytes().chunks(64).all(|block| {
        block
            .iter()
            .fold(true, |all, &byte| all & (byte.wrapping_sub(0x20) < 0x5f))
    });
    !printable_ascii && text.chars().any(is_unsafe_in_log)
}

/// `text` with every [`is_unsafe_in_log`] character written as `\u{XX}`, so it stays on one
/// line and shows what was sent. Borrowed when there is nothing to escape.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !has_unsafe_in_log(text) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        if is_unsafe_in_log(character) {
            escaped.push_str(&format!("\\u{{{:x}}}", u32::from(character)));
        } else {
            escaped.push(character);
        }
    }
    Cow::Owned(escaped)
}

/// A serde_json error as its category, line and column only: serde's message can quote the
/// input (a field name, a token), and caller text must not reach a log line or a response
/// unescaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonFault {
    category: &'static str,
    line: usize,
    column: usize,
}

impl JsonFault {
    /// The position and category of `error`, nothing it quotes.
    pub fn of(error: &serde_json::Error) -> Self {
        let category = match error.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "end-of-input",
        };
        Self {
            category,
            line: error.line(),
            column: error.column(),
        }
    }
}

impl std::fmt::Display for JsonFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} error at line {} column {}",
            self.category, self.line, self.column
        )
    }
}

/// Wraps the fmt layer's writers so one event is one line: the fmt layer writes each event with
/// one `write_all` of the formatted line (message and fields as they are, caller text included),
/// and this escapes everything unsafe in it except the final newline.
struct OneLinePerEvent<M>(M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for OneLinePerEvent<M> {
    type Writer = EscapingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EscapingWriter(self.0.make_writer_for(meta))
    }
}

/// See [`OneLinePerEvent`].
struct EscapingWriter<W>(W);

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buffer);
        let (line, ending) = match text.strip_suffix('\n') {
            Some(line) => (line, "\n"),
            None => (&*text, ""),
        };
        self.0.write_all(escape_controls(line).as_bytes())?;
        self.0.write_all(ending.as_bytes())?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The byte shortcut answers what the per-character test answers, for any text.
        #[test]
        fn the_ascii_shortcut_agrees_with_the_full_check(text in "\\PC*|[\\x00-\\x7f]*|.*") {
            proptest::prop_assert_eq!(
                has_unsafe_in_log(&text),
                text.chars().any(is_unsafe_in_log)
            );
        }

        /// Texts longer than one 64-byte block: a control byte anywhere, also at or beside a
        /// block boundary, is found; printable ASCII of any length is not flagged.
        #[test]
        fn the_shortcut_checks_every_block(
            prefix in "[ -~]{0,200}",
            unsafe_byte in "[\\x00-\\x1f\\x7f]",
            suffix in "[ -~]{0,130}",
        ) {
            let clean = format!("{prefix}{suffix}");
            let dirty = format!("{prefix}{unsafe_byte}{suffix}");
            proptest::prop_assert!(!has_unsafe_in_log(&clean));
            proptest::prop_assert!(has_unsafe_in_log(&dirty));
        }
    }

    #[test]
    fn escape_controls_keeps_every_line_breaking_character_off_the_line() {
        let hostile = "a\r\nb\u{1b}[2Jc\0d\u{2028}e\u{2029}f\u{85}g\u{7f}h\u{9b}i\tj";
        let escaped = escape_controls(hostile);
        assert!(!escaped.chars().any(is_unsafe_in_log), "{escaped}");
        assert_eq!(
            escaped,
            "a\\u{d}\\u{a}b\\u{1b}[2Jc\\u{0}d\\u{2028}e\\u{2029}f\\u{85}g\\u{7f}h\\u{9b}i\\u{9}j"
        );
        assert!(matches!(
            escape_controls("plain ü"),
            Cow::Borrowed("plain ü")
        ));
    }

    #[test]
    fn escape_controls_shows_bidirectional_overrides_instead_of_applying_them() {
        let reordered = "user \u{202e}nimda\u{202c} \u{2066}x\u{2069}\u{200f}";
        assert_eq!(
            escape_controls(reordered),
            "user \\u{202e}nimda\\u{202c} \\u{2066}x\\u{2069}\\u{200f}"
        );
    }

    #[test]
    fn the_process_log_writer_ends_each_event_with_its_only_newline() {
        let mut sink = Vec::new();
        EscapingWriter(&mut sink)
            .write_all("INFO forged\r\n2026 INFO x\u{2028}y\n".as_bytes())
            .expect("writes");
        let written = String::from_utf8(sink).expect("utf-8");
        assert_eq!(written, "INFO forged\\u{d}\\u{a}2026 INFO x\\u{2028}y\n");
    }
}
