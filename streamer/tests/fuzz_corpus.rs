//! Every input in the fuzzing corpora (`fuzz/corpus/*`, seeds recorded from real sessions and
//! every crash the fuzzer found) replayed through its target as a regression test: none may
//! panic past the containment of `rml_rtmp`'s panics, and the recorded seeds reach what they were recorded
//! for.

use std::path::PathBuf;
use streamer::rtmp::fuzz_client::{ClientReached, client_input};
use streamer::rtmp::server::fuzz_server::{Reached, server_input};

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn the_server_input_corpus_replays_without_a_panic() {
    let inputs = corpus("server_input");
    assert!(inputs.len() >= 9, "{} inputs", inputs.len());
    for (name, data) in &inputs {
        let reached = server_input(data);
        // The recorded sessions go all the way: both handshakes, a publish, a play, and the
        // publisher's media in the player's queue.
        if name.contains("-publishes-") && name.contains("-plays") {
            assert!(
                reached.handshakes == 2
                    && reached.published
                    && reached.played
                    && reached.player_items > 5,
                "{name}: {reached:?}"
            );
        }
    }
    assert_eq!(server_input(&[]), Reached::default());
    assert_eq!(server_input(&[1, 0, 0]), Reached::default());
}

#[test]
fn the_client_input_corpus_replays_without_a_panic() {
    let inputs = corpus("client_input");
    assert!(inputs.len() >= 5, "{} inputs", inputs.len());
    for (name, data) in &inputs {
        let reached = client_input(data);
        // The server's recorded answers to our publisher and player take them to
        // publishing and frames, and to playing and frames. (Its answers to ffmpeg name
        // ffmpeg's transactions, which our sessions never started: seeds for the parsing.)
        if !name.contains("-ours-") {
            continue;
        }
        if name.contains("publishing") {
            assert!(
                reached.published && reached.frames_sent > 0,
                "{name}: {reached:?}"
            );
        }
        if name.contains("playing") {
            assert!(
                reached.playing && reached.frames_received > 5,
                "{name}: {reached:?}"
            );
        }
    }
    assert_eq!(client_input(&[]), ClientReached::default());
    assert_eq!(client_input(&[1, 0, 0]), ClientReached::default());
}
