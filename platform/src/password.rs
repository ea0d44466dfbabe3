//! Reading a password the one way every Mist command does: asked without echo on a
//! terminal, or, with `--password-stdin`, the first line of standard input. Without a
//! terminal and without the flag there is nowhere to ask, and the command says so instead of
//! reading whatever standard input holds. A password never appears in output or in an error.

use std::io::{IsTerminal, Read};

/// The most standard input is read for a password: one line is all that is used.
const MAX_STDIN_BYTES: u64 = 64 * 1024;

/// The flag that makes a command read the password from standard input.
pub const STDIN_FLAG: &str = "--password-stdin";

/// Why no password could be read.
#[derive(Debug)]
pub enum PasswordError {
    /// Standard input is not a terminal and `--password-stdin` was not given.
    NoTerminal,
    /// The password read is empty.
    Empty,
    /// Reading failed.
    Io(std::io::Error),
}

impl std::fmt::Display for PasswordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordError::NoTerminal => write!(
                f,
                "standard input is not a terminal, so there is nowhere to ask for the password; \
                 pass {STDIN_FLAG} to read it from the first line of standard input"
            ),
            PasswordError::Empty => f.write_str("no password given"),
            PasswordError::Io(error) => write!(f, "cannot read the password: {error}"),
        }
    }
}

impl std::error::Error for PasswordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PasswordError::Io(error) => Some(error),
            _ => None,
        }
    }
}

/// One password: the first line of standard input when `from_stdin`, else asked with
/// `prompt` without echo on the terminal.
pub fn read(prompt: &str, from_stdin: bool) -> Result<String, PasswordError> {
    let password = if from_stdin {
        first_line_of_stdin()?
    } else {
        ask(prompt)?
    };
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    Ok(password)
}

/// A new password: the first line of standard input when `from_stdin`, else asked twice
/// without echo; `Ok(None)` when the two answers differ.
pub fn read_new(prompt: &str, from_stdin: bool) -> Result<Option<String>, PasswordError> {
    let first = read(prompt, from_stdin)?;
    if from_stdin {
        return Ok(Some(first));
    }
    let second = ask("Again: ")?;
    Ok((first == second).then_some(first))
}

/// Asks on the terminal without echo.
fn ask(prompt: &str) -> Result<String, PasswordError> {
    if !std::io::stdin().is_terminal() {
        return Err(PasswordError::NoTerminal);
    }
    rpassword::prompt_password(prompt).map_err(PasswordError::Io)
}

/// The first line of standard input, without its line ending.
fn first_line_of_stdin() -> Result<String, PasswordError> {
    let mut text = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_STDIN_BYTES)
        .read_to_string(&mut text)
        .map_err(PasswordError::Io)?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}
