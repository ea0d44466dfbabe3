//! How the crate's errors report a failed I/O operation: each error type has an
//! `Io { path, action, source }` variant, and [`io_error_fn!`] writes the one `map_err`
//! adapter that builds it, in the error type's module.

/// Writes `pub(crate) fn io_error(path, action)` for the error type `$error`: a `map_err`
/// adapter that turns an `io::Error` met while doing `action` to `path` into
/// `$error::Io { path, action, source }`.
macro_rules! io_error_fn {
    ($error:ident) => {
        /// A `map_err` adapter: the I/O error met while doing `action` to `path`.
        pub(crate) fn io_error(
            path: &std::path::Path,
            action: &'static str,
        ) -> impl FnOnce(std::io::Error) -> $error {
            let path = path.to_owned();
            move |source| $error::Io {
                path,
                action,
                source,
            }
        }
    };
}
pub(crate) use io_error_fn;
