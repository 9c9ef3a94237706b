//! The search for the largest N that holds: grow from a guess, then bisect.
//!
//! From the guess, N grows by 1, 1, 2, 4, … while it holds (or shrinks so while it
//! does not), until one N that holds and one above it that does not are known; then the gap
//! between them is halved until they are neighbours. A good guess (a neighbouring cell's N)
//! costs two trials.

/// The largest `n` in `1..=max` for which `holds(n)` is true, assuming that holding is
/// monotonic (0 when even 1 does not hold); `holds` runs the trial.
///
/// # Errors
/// What `holds` returns.
pub fn largest<E>(
    guess: u32,
    max: u32,
    mut holds: impl FnMut(u32) -> Result<bool, E>,
) -> Result<u32, E> {
    let max = max.max(1);
    let mut n = guess.clamp(1, max);
    // The largest known to hold, and the least known not to.
    let (mut lo, mut hi): (u32, Option<u32>) = (0, None);
    // Steps of 1, 1, 2, 4, …: a guess one or two short costs no more trials than a right one.
    let (mut step, mut taken) = (1, 0);
    let mut next_step = |step: &mut u32| {
        taken += 1;
        if taken > 1 {
            *step *= 2;
        }
    };
    let first = holds(n)?;
    if first {
        lo = n;
        while hi.is_none() && lo < max {
            n = (lo + step).min(max);
            next_step(&mut step);
            if holds(n)? {
                lo = n;
            } else {
                hi = Some(n);
            }
        }
    } else {
        hi = Some(n);
        while lo == 0 && hi.is_some_and(|h| h > 1) {
            n = hi.unwrap_or(1).saturating_sub(step).max(1);
            next_step(&mut step);
            if holds(n)? {
                lo = n;
            } else {
                hi = Some(n);
            }
        }
    }
    while let Some(h) = hi {
        if h <= lo + 1 {
            break;
        }
        let mid = lo + (h - lo) / 2;
        if holds(mid)? {
            lo = mid;
        } else {
            hi = Some(mid);
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::largest;

    /// The trials `largest` asks for, against a machine that holds `limit` streams.
    fn run(guess: u32, limit: u32, max: u32) -> (u32, Vec<u32>) {
        let mut asked = Vec::new();
        let n = largest(guess, max, |n| {
            asked.push(n);
            Ok::<_, ()>(n <= limit)
        })
        .unwrap();
        (n, asked)
    }

    #[test]
    fn it_finds_the_limit_from_any_guess() {
        for limit in 0..40 {
            for guess in [1, 3, 7, 12, 39] {
                assert_eq!(
                    run(guess, limit, 48).0,
                    limit,
                    "guess {guess} limit {limit}"
                );
            }
        }
        assert_eq!(run(5, 100, 48).0, 48, "capped at the most streams");
    }

    #[test]
    fn a_right_guess_costs_two_trials_and_a_far_one_few() {
        assert_eq!(run(9, 9, 48).1, vec![9, 10]);
        assert_eq!(run(10, 9, 48).1, vec![10, 9]);
        assert!(run(2, 30, 48).1.len() <= 12, "{:?}", run(2, 30, 48).1);
        assert_eq!(run(9, 10, 48).1, vec![9, 10, 11]);
        assert_eq!(run(3, 0, 48).1, vec![3, 2, 1]);
    }
}
