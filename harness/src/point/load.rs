//! The load around a point's stream, started before it opens and stopped after it finishes:
//! a link the kernel shapes (this thread, and the server, players and stream it starts, in a
//! network namespace of their own), players on an embedded RTMP server, a CPU quota (this
//! process in a cgroup of its own).

use super::{PointJob, PointRun, RunError};
use crate::quota::CpuQuota;
use crate::record::Recorder;
use crate::scenario::{CpuPlan, LinkPlan};
use crate::shaped::ShapedLink;
use std::sync::Arc;
use streamer::rtmp::LocalRelay;

/// What a point's stream runs among. Dropped in this order: the quota, the relay, the link.
pub(super) struct Load {
    quota: Option<CpuQuota>,
    relay: Option<LocalRelay>,
    shaped: Option<ShapedLink>,
}

/// The load as the measured window sees it.
pub(super) struct Around<'a> {
    pub relay: Option<&'a LocalRelay>,
    pub link: Option<(&'a ShapedLink, &'a LinkPlan, &'a Recorder)>,
    pub quota: Option<(&'a CpuQuota, &'a CpuPlan)>,
}

impl Load {
    /// Starts what `job` asks for.
    pub(super) fn start(job: &PointJob, recorder: &Arc<Recorder>) -> Result<Self, RunError> {
        let fps = job.config.core.viewport.fps;
        let shaped = match &job.link {
            Some(_) => {
                let link = ShapedLink::create("point")?;
                link.enter()?;
                Some(link)
            }
            None => None,
        };
        let relay = match job.players {
            0 => None,
            n => Some(LocalRelay::start(
                &job.config.rtmp,
                n as usize,
                fps,
                Arc::clone(recorder),
            )?),
        };
        if let (Some(link), Some(relay), Some(plan)) = (&shaped, &relay, &job.link) {
            link.shape_port(relay.url.port, plan.schedule[0].1)?;
        }
        let quota = match &job.quota {
            Some(plan) => Some(
                CpuQuota::create("point", plan.schedule[0].1)
                    .map_err(|e| RunError::Protocol(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Load {
            quota,
            relay,
            shaped,
        })
    }

    pub(super) fn around<'a>(&'a self, job: &'a PointJob, recorder: &'a Recorder) -> Around<'a> {
        Around {
            relay: self.relay.as_ref(),
            link: self
                .shaped
                .as_ref()
                .zip(job.link.as_ref())
                .map(|(s, p)| (s, p, recorder)),
            quota: self.quota.as_ref().zip(job.quota.as_ref()),
        }
    }

    /// Stops the players and the server: the frames the server dropped for slow players go
    /// into the run's network figures.
    pub(super) fn stop(self, run: &mut PointRun) {
        let Load { relay, .. } = self;
        if let (Some(relay), Some(net)) = (relay, run.network.as_mut()) {
            let (_, dropped) = relay.stop();
            net.server_dropped = dropped;
        }
    }
}
