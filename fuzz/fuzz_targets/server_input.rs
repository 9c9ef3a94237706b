//! The embedded RTMP server's whole input path: a publisher's and a player's bytes through
//! the handshake, chunk reassembly, the session and the server's own handling, and the
//! player's queue serialized (see `streamer::rtmp::server::fuzz_server::server_input`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streamer::rtmp::server::fuzz_server::server_input(data);
});
