//! The render job queue (`priorityLevels`): jobs wait by priority level, the highest level
//! first and first-in first-out within a level. While frames are in flight on the GPU
//! (`maxConcurrent` > 1) the renderer submits the waiting frames in this order, so a frame
//! that matters more (a keyframe) reaches the GPU before the others of its round.

use std::collections::VecDeque;

/// Waiting jobs by priority level.
#[derive(Debug)]
pub struct RenderQueue<T> {
    levels: Vec<VecDeque<T>>,
    /// Jobs that asked for a level above the highest and were clamped to it.
    pub clamped: u64,
}

impl<T> RenderQueue<T> {
    /// A queue of `levels` priority levels (at least one): 0 is the lowest.
    pub fn new(levels: u32) -> Self {
        RenderQueue {
            levels: (0..levels.max(1)).map(|_| VecDeque::new()).collect(),
            clamped: 0,
        }
    }

    /// The highest level.
    pub fn top(&self) -> u32 {
        self.levels.len() as u32 - 1
    }

    /// Queues `job` at `level` (clamped to the highest level).
    pub fn push(&mut self, level: u32, job: T) {
        let top = self.top();
        if level > top {
            self.clamped += 1;
        }
        self.levels[level.min(top) as usize].push_back(job);
    }

    /// The next job: the oldest of the highest non-empty level.
    pub fn pop(&mut self) -> Option<T> {
        self.levels.iter_mut().rev().find_map(VecDeque::pop_front)
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.levels.iter().map(VecDeque::len).sum()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Frame `id`'s priority level in a GOP of `gop` frames, with `top` the highest level: the
/// keyframe (a GOP's first frame) at the top, the frames after it spread over the levels below
/// by their place, the earlier ones higher (more of the GOP's frames are predicted from them).
/// Every level is used once a GOP has at least as many frames as there are levels.
pub fn level(id: u64, gop: u64, top: u32) -> u32 {
    let pos = id % gop.max(1);
    if pos == 0 || top == 0 {
        return top;
    }
    let below = u64::from(top);
    (below - 1 - (pos - 1) * below / (gop - 1).max(1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_level_first_and_fifo_within_a_level() {
        let mut q = RenderQueue::new(3);
        q.push(0, "a0");
        q.push(2, "c0");
        q.push(1, "b0");
        q.push(0, "a1");
        q.push(2, "c1");
        assert_eq!(q.len(), 5);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, ["c0", "c1", "b0", "a0", "a1"]);
        assert!(q.is_empty());
    }

    #[test]
    fn every_level_is_used_over_a_gop_keyframe_first() {
        for levels in 1..=8u32 {
            let top = levels - 1;
            let used: std::collections::BTreeSet<u32> =
                (0..60).map(|id| level(id, 60, top)).collect();
            assert_eq!(used.len() as u32, levels, "{levels} levels: {used:?}");
            assert_eq!(level(120, 60, top), top, "a keyframe at the top");
            // Earlier in the GOP never lower.
            for id in 1..59 {
                assert!(level(id, 60, top) >= level(id + 1, 60, top));
            }
        }
        assert_eq!(level(7, 1, 2), 2, "every frame a keyframe");
    }

    #[test]
    fn one_level_is_plain_fifo_and_levels_above_clamp() {
        let mut q = RenderQueue::new(1);
        q.push(0, 1);
        q.push(5, 2);
        q.push(0, 3);
        assert_eq!(q.clamped, 1);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, [1, 2, 3]);
    }
}
