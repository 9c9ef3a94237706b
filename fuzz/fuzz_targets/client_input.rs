//! The publisher's and the player's input paths: a server's bytes through the client
//! handshake, setting up the publish and answering while frames go out, and through the
//! player's session (see `streamer::rtmp::fuzz_client::client_input`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streamer::rtmp::fuzz_client::client_input(data);
});
