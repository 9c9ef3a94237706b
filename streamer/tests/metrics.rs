//! `stream-manager run --metrics`: scraped while it streams, the exposition carries the guide's
//! names and passes `promtool check metrics` (Debian package `prometheus`, installed by
//! `.ci/run`; without it this test fails, it never skips).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

/// The value of the sample `name` (no labels) in `text`.
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in the exposition"))
}

#[test]
fn metrics_are_served_while_streaming_and_pass_promtool() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stream-manager"))
        .args(["run", "--output", "null", "--frames", "150"])
        .args(["--metrics", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("stream-manager runs");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        assert!(Instant::now() < deadline, "no metrics address printed");
        let line = lines.next().expect("stderr open").unwrap();
        if let Some(rest) = line.strip_prefix("metrics: http://") {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    // Drain the rest of stderr so the child never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    std::thread::sleep(Duration::from_secs(2));
    let (head, first) = get(&addr, "/metrics");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200"),
        "{head}"
    );
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    std::thread::sleep(Duration::from_secs(1));
    let (_, text) = get(&addr, "/metrics");
    let (missing, _) = get(&addr, "/nope");
    assert!(missing.contains(" 404"), "{missing}");
    for name in [
        "# TYPE stream_manager_encoding_time_ms histogram",
        "# TYPE stream_manager_bitrate_kbps gauge",
        "# TYPE stream_manager_fps gauge",
        "# TYPE stream_manager_dropped_frames_total counter",
        "# TYPE stream_manager_queue_size gauge",
        "# TYPE stream_manager_memory_bytes gauge",
        "# TYPE stream_manager_encoder_latency_seconds gauge",
        "# TYPE stream_manager_buffer_health gauge",
        "# TYPE stream_manager_cpu_usage_percent gauge",
        "stream_manager_span_duration_seconds_count{span=\"encode\"}",
        "stream_manager_span_duration_seconds_count{span=\"render:frame\"}",
        "stream_manager_span_duration_seconds_count{span=\"frame:total\"}",
        "stream_manager_dropped_frames_total{reason=\"queue_full\"}",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    // Live: a second scrape a second later sees frames going out (how many is the benches'
    // business, not this test's).
    let fps = value(&text, "stream_manager_fps");
    assert!(fps > 0.0, "fps {fps}");
    assert!(value(&text, "stream_manager_bitrate_kbps") > 100.0);
    assert!(value(&text, "stream_manager_memory_bytes") > 1e6);
    assert!(
        value(&text, "stream_manager_encoding_time_ms_count")
            > value(&first, "stream_manager_encoding_time_ms_count")
    );
    // promtool: exit 0 (clean) or 3 (lint findings); every finding may only be about the
    // guide's own name stream_manager_encoding_time_ms, whose unit Prometheus would spell out.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`) is installed: .ci/run installs it");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code();
    assert!(matches!(code, Some(0 | 3)), "promtool {code:?}: {report}");
    for finding in report.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            finding.starts_with("stream_manager_encoding_time_ms "),
            "promtool: {finding}"
        );
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "stream-manager exited with {status}");
}
