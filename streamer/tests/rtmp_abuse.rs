//! Hostile input: malformed messages end only their own connection, and a panic of
//! `rml_rtmp` on a peer's input is one quiet line, in the library and in the serve binary.

mod common;

use common::*;
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use streamer::config::RtmpConfig;
use streamer::probe::NoProbe;
use streamer::rtmp::player::PlayerLoad;
use streamer::rtmp::server::Server;
use streamer::stream::Pacing;

fn still_serves(server: &Server, case: &str) {
    let target = url(server, &format!("after-{}", case.replace(' ', "-")));
    let load = PlayerLoad::start(&target.parse().unwrap(), 1, 30, Arc::new(NoProbe)).unwrap();
    assert!(
        load.wait_playing(Duration::from_secs(5)),
        "after {case}: a player could not play"
    );
    let summary = publish(&small(), &target, 15, Pacing::Max);
    assert_eq!(summary.sink.dropped, 0, "after {case}");
    std::thread::sleep(Duration::from_millis(300));
    let report = load.stop().remove(0);
    assert_eq!(report.frames, 15, "after {case}: {report:?}");
}

#[test]
fn malformed_input_ends_only_its_own_connection() {
    let cfg = RtmpConfig {
        handshake_timeout: 1,
        ..RtmpConfig::default()
    };
    let server = server(&cfg);
    let addr = server.local_addr();

    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.write_all(&[0xde; 5000]).unwrap();
    still_serves(&server, "garbage");

    let mut truncated = TcpStream::connect(addr).unwrap();
    truncated.write_all(&[3; 700]).unwrap(); // C0 and part of C1, then silence
    still_serves(&server, "a truncated handshake");

    // `@setDataFrame` with nothing after it: rml_rtmp panics on it.
    let panics_before = server.stats().panics.load(Ordering::Relaxed);
    let mut amf = publishing_socket(addr, "amf");
    let _ = amf.write_all(&chunk(RtmpMessage::Amf0Data {
        values: vec![Amf0Value::Utf8String("@setDataFrame".into())],
    }));
    still_serves(&server, "AMF data with missing values");
    // The server surviving is not enough (tokio would isolate a task's panic on its own): the
    // panic count is raised only where the connection's catch_unwind caught rml_rtmp's panic.
    wait_for(
        "rml_rtmp's panic on `@setDataFrame` to be caught and counted",
        Duration::from_secs(5),
        || server.stats().panics.load(Ordering::Relaxed) == panics_before + 1,
    );

    let mut chunky = publishing_socket(addr, "chunky");
    let _ = chunky.write_all(&chunk(RtmpMessage::SetChunkSize { size: 0x7fff_ffff }));
    let _ = chunky.write_all(&[0x06; 4096]);
    still_serves(&server, "an absurd chunk size");

    // A type 0 chunk header announcing a 16 MiB message, then garbage.
    let mut long = publishing_socket(addr, "long");
    let _ = long.write_all(&[0x04, 0, 0, 0, 0xff, 0xff, 0xff, 0x09, 1, 0, 0, 0]);
    let _ = long.write_all(&[0x17; 8192]);
    still_serves(&server, "an absurd message length");

    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(flood.len() >= 150);
    still_serves(&server, "a flood of half-open connections");
    wait_for(
        "half-open connections to time out",
        Duration::from_secs(5),
        || server.stats().connections_open.load(Ordering::Relaxed) < 50,
    );
    let stats = server.stats();
    assert!(
        stats.panics.load(Ordering::Relaxed) + stats.protocol_errors.load(Ordering::Relaxed) >= 2
    );
    drop((garbage, truncated, amf, chunky, long, flood));
}

/// `GET /metrics` from a metrics endpoint at `addr`: the body.
fn scrape(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(text)
}

/// Resident memory of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_contained_panic_is_one_quiet_line_even_with_rust_backtrace_set() {
    // A fixed metrics port would clash between runs: find a free one first.
    let metrics = format!("127.0.0.1:{}", free_port());
    let (server, pid, (addr, _), lines) =
        serve_binary(&[("RUST_BACKTRACE", "1")], &["--metrics", &metrics]);
    let next = |limit: Duration| lines.recv_timeout(limit).ok();
    // `@setDataFrame` with nothing after it: rml_rtmp panics on it.
    let hostile = || {
        let mut s = publishing_socket(addr, "amf");
        let _ = s.write_all(&chunk(RtmpMessage::Amf0Data {
            values: vec![Amf0Value::Utf8String("@setDataFrame".into())],
        }));
        // The server closes the connection: read to its end.
        let _ = s.read_to_end(&mut Vec::new());
    };
    hostile();
    let first = next(Duration::from_secs(5)).expect("a line for the first panic");
    assert!(
        first.contains("rml_rtmp panicked on what it sent (")
            && first.contains(" bytes: ")
            && first.contains("rml_rtmp-")
            && first.contains(".rs:"),
        "{first}"
    );
    let rss_before = rss_kib(pid);
    for _ in 0..20 {
        hostile();
    }
    std::thread::sleep(Duration::from_millis(1100));
    hostile();
    let mut rest = Vec::new();
    while let Some(l) = next(Duration::from_millis(500)) {
        rest.push(l);
    }
    let rss_after = rss_kib(pid);
    // Counted, and exported.
    let exported = scrape(&metrics);
    assert!(
        exported.contains("\nstream_manager_server_panics_total 22\n"),
        "{exported}"
    );
    drop(server);
    // No backtrace, no default panic message: one line a second at most, which says how many
    // it left out.
    assert!(
        rest.iter()
            .all(|l| !l.contains("backtrace") && !l.contains("thread '")),
        "{rest:#?}"
    );
    // 21 more panics, over about a second and a half (more on a slow machine): a few lines.
    let panic_lines: Vec<&String> = rest.iter().filter(|l| l.contains("panicked")).collect();
    assert!(
        (1..=10).contains(&panic_lines.len())
            && panic_lines
                .iter()
                .any(|l| l.contains("more since the last such line")),
        "{rest:#?}"
    );
    assert!(
        rss_after < rss_before + 1024,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB over 21 contained panics"
    );
}
