//! Adaptive bitrate through a link the kernel shapes (a network namespace with `htb` on its
//! loopback; root, as CI runs): the encoder's bitrate follows the cap, measured from what it
//! sent and from the FLV the players received, and players keep receiving.

use harness::shaped::ShapedLink;
use std::sync::Arc;
use streamer::adapt::AdaptChange;
use streamer::config::{RateMode, StreamConfig};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::rtmp::LocalRelay;
use streamer::stream::{Pacing, Stream};

const CAP_KBPS: u32 = 800;

#[test]
fn through_a_shaped_link_the_encoders_bitrate_follows_the_cap_and_players_keep_receiving() {
    let link = ShapedLink::create("abr").unwrap_or_else(|e| panic!("{e}"));
    link.enter().unwrap();
    let mut cfg = StreamConfig::default();
    cfg.core.viewport.width = 640;
    cfg.core.viewport.height = 360;
    cfg.encoder.pipeline.threads = 1;
    let rc = &mut cfg.encoder.rate_control;
    (rc.mode, rc.bitrate_kbps, rc.vbv_buffer_kbits) = (RateMode::Bitrate, 3000, 3000);
    cfg.adaptive.bitrate.enabled = true;
    let fps = cfg.core.viewport.fps;
    let relay = LocalRelay::start(&cfg.rtmp, 2, fps, Arc::new(NoProbe)).unwrap();
    link.shape_port(relay.url.port, CAP_KBPS).unwrap();
    let mut stream = Stream::open(&cfg, &Output::Rtmp(relay.url.clone()), &NoProbe).unwrap();
    // 6 s to notice the cap and settle, then 3 s measured.
    stream.run(u64::from(fps) * 6, Pacing::Realtime).unwrap();
    let (before, players_before) = (stream.counters(), relay.reports());
    let measured_s = 3.0;
    stream
        .run((f64::from(fps) * measured_s) as u64, Pacing::Realtime)
        .unwrap();
    let (after, players_after) = (stream.counters(), relay.reports());
    let summary = stream.finish().unwrap();
    for e in &summary.adaptation {
        println!("{:>6} ms  {:?}  ({})", e.t_ms, e.change, e.signal);
    }
    // Where the controller left the target: under the cap.
    let target = summary
        .adaptation
        .iter()
        .rev()
        .find_map(|e| match e.change {
            AdaptChange::Bitrate { to, .. } => Some(to),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the bitrate never changed: {:?}", summary.adaptation));
    assert!(
        target <= CAP_KBPS,
        "target {target} kbit/s through a {CAP_KBPS} kbit/s link: {:#?}",
        summary.adaptation
    );
    let kbps = (after.bytes - before.bytes) as f64 * 8.0 / measured_s / 1000.0;
    println!(
        "sent {kbps:.0} kbit/s in the measured 3 s; drops {:?}",
        summary.pipeline.drops
    );
    assert!(
        kbps <= 1.3 * f64::from(CAP_KBPS),
        "{kbps:.0} kbit/s sent through a {CAP_KBPS} kbit/s link: {:?}",
        summary.adaptation
    );
    for (a, b) in players_after.iter().zip(&players_before) {
        assert!(a.frames > b.frames, "a player stopped receiving: {a:?}");
        // What reached the player: the FLV video tags' payload the server relayed.
        let received = (a.bytes - b.bytes) as f64 * 8.0 / measured_s / 1000.0;
        assert!(
            received <= 1.3 * f64::from(CAP_KBPS),
            "a player received {received:.0} kbit/s of FLV through a {CAP_KBPS} kbit/s link"
        );
    }
    let q = summary.network.expect("the connection was sampled");
    assert!(q.rtt_ms > 0.0, "{q:?}");
}
