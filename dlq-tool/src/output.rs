//! Writing to stdout and stderr without panicking on a closed pipe
//! (`dlq-tool list | head` must not end in a panic), and the progress bar that
//! bulk work shows only to people.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::Error;

/// Writes `text` to stdout as is. A closed pipe is not an error: the reader
/// has what it wanted.
pub fn out(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output(error)),
        _ => Ok(()),
    }
}

/// Writes `text` and a newline to stdout.
pub fn out_line(text: &str) -> Result<(), Error> {
    out(&format!("{text}\n"))
}

/// Writes one JSON document (pretty, newline-terminated) to stdout.
pub fn out_json(value: &serde_json::Value) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Output(e.into()))?;
    out_line(&text)
}

/// Writes `text` and a newline to stderr; failures to do so are ignored (there
/// is nowhere left to report them).
pub fn err_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// A progress bar on stderr for `total` entries, drawn only when stdout is a
/// terminal: a person is watching. Hidden otherwise, so scripts and logs get
/// only the summary.
pub fn progress_bar(total: usize, verb: &str) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    let template = format!("{verb} [{{bar:40}}] {{pos}}/{{len}} ({{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
