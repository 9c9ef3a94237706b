//! Panics caused by a peer's input, contained to its connection and kept quiet: [`contained`]
//! runs a call into `rml_rtmp` (which panics on some malformed messages) so that its panic
//! becomes an error with where it happened, without the default panic hook's message and
//! backtrace. With `RUST_BACKTRACE=1` the default hook symbolizes a backtrace, which loads the
//! debug info (over 100 MiB resident) and prints some 40 lines, once per panic — a peer could
//! drive that in a loop. Any other panic still goes to the hook that was installed before.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// Inside [`contained`] on this thread.
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
    /// The last contained panic's message and location on this thread.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A panic caught by [`contained`]: where it happened and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Contained(pub String);

impl std::fmt::Display for Contained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs `f`; a panic in it is caught and returned as [`Contained`], printing nothing.
pub(crate) fn contained<R>(f: impl FnOnce() -> R) -> Result<R, Contained> {
    install_hook();
    let was = CONTAINING.replace(true);
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINING.set(was);
    result.map_err(|payload| {
        let said = LAST.take().unwrap_or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into())
        });
        Contained(said)
    })
}

/// Puts a hook before the one installed now, once per process: a panic inside [`contained`]
/// is noted for it (message and location, no backtrace), any other goes on as before.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CONTAINING.get() {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                let at = info.location().map_or(String::new(), |l| {
                    format!(" at {}:{}", short(l.file()), l.line())
                });
                LAST.set(Some(format!("{msg}{at}")));
            } else {
                before(info);
            }
        }));
    });
}

/// A source path without cargo's registry folders: `rml_rtmp-0.8.0/src/…`.
fn short(file: &str) -> &str {
    match file.split_once("/registry/src/") {
        Some((_, rest)) => rest.split_once('/').map_or(rest, |(_, path)| path),
        None => file,
    }
}

/// The first bytes of `bytes` in hex, and how many there were, for a log line.
pub(crate) fn sample(bytes: &[u8]) -> String {
    const SHOWN: usize = 24;
    let hex: Vec<String> = bytes
        .iter()
        .take(SHOWN)
        .map(|b| format!("{b:02x}"))
        .collect();
    let more = if bytes.len() > SHOWN { " …" } else { "" };
    format!("{} bytes: {}{more}", bytes.len(), hex.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contained_panic_says_where_and_what() {
        let e = contained(|| -> u32 { panic!("index out of bounds") }).unwrap_err();
        assert!(e.0.starts_with("index out of bounds at "), "{e}");
        assert!(e.0.contains("contain.rs:"), "{e}");
        assert_eq!(contained(|| 7), Ok(7));
        assert_eq!(sample(&[1, 2, 0xff]), "3 bytes: 01 02 ff");
        assert_eq!(
            short("/root/.cargo/registry/src/index.crates.io-1949/rml_rtmp-0.8.0/src/a.rs"),
            "rml_rtmp-0.8.0/src/a.rs"
        );
        assert!(sample(&[0; 30]).ends_with("00 …"));
    }
}
