//! Printing errors with their causes.

use std::error::Error;
use std::fmt;

/// Shows an error and each of its causes once, `a: b: c`.
///
/// Mist's error types keep their cause out of their own message and return it from
/// [`Error::source`], so a message stays short where it is matched or shown alone; this is
/// how the whole story is printed. A cause whose text the message before it already
/// contains is skipped, so an error that does embed its cause still prints it once.
///
/// ```
/// use std::error::Error;
/// use std::fmt;
///
/// use mist_platform::error::ErrorChain;
///
/// #[derive(Debug)]
/// struct ReadFailed(std::io::Error);
///
/// impl fmt::Display for ReadFailed {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         f.write_str("failed to read the config")
///     }
/// }
///
/// impl Error for ReadFailed {
///     fn source(&self) -> Option<&(dyn Error + 'static)> {
///         Some(&self.0)
///     }
/// }
///
/// let error = ReadFailed(std::io::Error::other("disk full"));
/// assert_eq!(ErrorChain(&error).to_string(), "failed to read the config: disk full");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            let text = error.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
            }
            shown = text;
            source = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and an optional cause.
    #[derive(Debug)]
    struct Layer {
        message: &'static str,
        cause: Option<Box<Layer>>,
    }

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.message)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.cause
                .as_deref()
                .map(|cause| cause as &(dyn Error + 'static))
        }
    }

    fn chain(messages: &[&'static str]) -> Layer {
        let mut layer: Option<Box<Layer>> = None;
        for message in messages.iter().rev() {
            layer = Some(Box::new(Layer {
                message,
                cause: layer,
            }));
        }
        *layer.expect("at least one message")
    }

    #[test]
    fn every_cause_is_printed_once_in_order() {
        let cases: &[(&[&str], &str)] = &[
            (&["a"], "a"),
            (&["a", "b", "c"], "a: b: c"),
            // A message that already ends with its cause's text does not repeat it.
            (
                &["failed to read x: gone", "gone"],
                "failed to read x: gone",
            ),
            (
                &[
                    "step 2: failed to read x: gone",
                    "failed to read x: gone",
                    "gone",
                ],
                "step 2: failed to read x: gone",
            ),
            (
                &["outer", "failed to read x: gone", "gone"],
                "outer: failed to read x: gone",
            ),
            (&["outer", "", "inner"], "outer: inner"),
        ];
        for (messages, expected) in cases {
            assert_eq!(
                ErrorChain(&chain(messages)).to_string(),
                *expected,
                "{messages:?}"
            );
        }
    }

    #[test]
    fn debug_prints_the_chain_too() {
        let error = chain(&["a", "b"]);
        assert_eq!(format!("{:?}", ErrorChain(&error)), "a: b");
    }
}
