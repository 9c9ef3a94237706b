//! The internal `harness point` command: one point from a JSON job on stdin, its result as
//! JSON on stdout (what [`crate::point::run_in_child`] starts).

use crate::point::{PointJob, run_here};
use anyhow::{Context, Result};
use std::io::Read;

/// Runs the job read from stdin and prints its result.
///
/// # Errors
/// The job cannot be read or the point fails.
pub fn point() -> Result<()> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let job: PointJob = serde_json::from_str(&input).context("reading the job")?;
    let result = run_here(&job)?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}
