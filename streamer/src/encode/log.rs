//! FFmpeg's log, read instead of printed as it comes: errors still go to stderr as FFmpeg
//! prints them (the level the tool keeps it to), and an encoder's `using cpu capabilities`
//! line (libx264's, when it opens) is kept, by the codec context that wrote it, for that
//! encoder's notes: the CPU features `encoder.pipeline.cpuFlags` left it.

use ffmpeg_next::ffi;
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::sync::Mutex;

/// The capabilities line of each codec context that wrote one and has not been read.
static CPU_CAPS: Mutex<BTreeMap<usize, String>> = Mutex::new(BTreeMap::new());

const MARK: &str = "using cpu capabilities:";

unsafe extern "C" fn callback(
    ptr: *mut libc::c_void,
    level: libc::c_int,
    fmt: *const libc::c_char,
    vl: *mut ffi::__va_list_tag,
) {
    if level <= ffi::AV_LOG_ERROR {
        // SAFETY: the arguments are FFmpeg's own, passed on unread.
        unsafe { ffi::av_log_default_callback(ptr, level, fmt, vl) };
        return;
    }
    if level > ffi::AV_LOG_INFO {
        return;
    }
    let mut line = [0 as libc::c_char; 1024];
    let mut prefix: libc::c_int = 1;
    // SAFETY: `line` is writable for its length; the format and list are FFmpeg's.
    unsafe {
        ffi::av_log_format_line2(
            ptr,
            level,
            fmt,
            vl,
            line.as_mut_ptr(),
            line.len() as libc::c_int,
            &mut prefix,
        );
    }
    // SAFETY: av_log_format_line2 NUL-terminates within the buffer.
    let text = unsafe { CStr::from_ptr(line.as_ptr()) }.to_string_lossy();
    if let Some(caps) = text.split(MARK).nth(1)
        && let Ok(mut seen) = CPU_CAPS.lock()
    {
        seen.insert(ptr as usize, caps.trim().to_string());
    }
}

/// Routes FFmpeg's log through [`callback`] (once per process).
pub(super) fn install() {
    // SAFETY: the callback is a plain function that lives as long as the process.
    unsafe { ffi::av_log_set_callback(Some(callback)) };
}

/// The CPU capabilities the codec context at `ctx` said it uses, if it said so (taken).
pub(super) fn cpu_caps(ctx: *const ffi::AVCodecContext) -> Option<String> {
    CPU_CAPS.lock().ok()?.remove(&(ctx as usize))
}
