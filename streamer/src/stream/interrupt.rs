//! Ctrl-C (SIGINT) during a stream: the first asks it to stop (the frames in flight are encoded
//! and sent, the output closed properly), a second exits the process at once (130).

use super::Live;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Ctrl-C (SIGINT) while it lives: the first asks the stream to stop; a second exits at once.
pub struct Interrupt {
    done: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

impl Interrupt {
    /// Watches for SIGINT while it lives, asking `live`'s stream to stop on the first.
    pub fn watch(live: Live) -> Self {
        // SAFETY: the handler only touches an atomic and calls _exit, both async-signal-safe.
        unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
        let done = Arc::new(AtomicBool::new(false));
        let watcher = std::thread::Builder::new()
            .name("interrupt".into())
            .spawn({
                let done = Arc::clone(&done);
                move || {
                    while !done.load(Ordering::Relaxed) {
                        if INTERRUPTED.load(Ordering::Relaxed) {
                            eprintln!(
                                "interrupted: finishing the frames in flight and closing the \
                                 stream (Ctrl-C again exits at once)"
                            );
                            live.stop();
                            return;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                }
            })
            .ok();
        Interrupt { done, watcher }
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}
