//! Reading passwords: from a prompt that does not echo, or from the first line of standard
//! input. Shared by `user add` (which hashes it) and the server commands' `--user` (which log
//! in with it). A password never appears in output, in an error or in the process list.

use std::io::{IsTerminal, Read};

use anyhow::Context;

/// The most standard input is read for a password: one line is all that is used.
const MAX_STDIN_BYTES: u64 = 64 * 1024;

/// Whether standard input is a terminal, so a prompt can be shown.
pub(crate) fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks for a password on the terminal without echoing it.
pub(crate) fn prompt(prompt: &str) -> anyhow::Result<String> {
    rpassword::prompt_password(prompt).context("cannot read the password")
}

/// The first line of standard input, without its line ending.
pub(crate) fn first_line_of_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_STDIN_BYTES)
        .read_to_string(&mut text)
        .context("cannot read the password from standard input")?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}
