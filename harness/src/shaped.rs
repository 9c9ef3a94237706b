//! A shaped link on this machine: a network namespace of its own (its own loopback), where
//! the kernel limits the traffic sent to one TCP port: an `htb` qdisc on the namespace's `lo`,
//! a class at the link's rate and a `u32` filter on the destination port, so the publisher →
//! server direction is shaped and the server → players direction is not. Only `htb` and `u32`
//! are used (this machine's kernel has no `netem`). The rate changes while streams run
//! (`tc class change`).
//!
//! A thread enters the namespace with [`ShapedLink::enter`]; every socket it opens from then
//! on, and every thread it starts, is inside. The namespace and its qdisc go when the link is
//! dropped (and `ip netns del` runs even after a panic, through `Drop`).
//!
//! Needs root (network namespaces and `tc`) and iproute2's `ip` and `tc`; without them
//! [`ShapedLink::create`] says exactly what is missing.

use std::process::Command;

/// Why a shaped link could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error(
        "a shaped link needs root (a network namespace and tc): run as root, e.g. `sudo cargo \
         xtask …`"
    )]
    NotRoot,
    #[error("`{command}` failed: {why}")]
    Command { command: String, why: String },
    #[error("entering the network namespace {name}: {why}")]
    Enter { name: String, why: String },
}

/// A network namespace with a shaped loopback.
pub struct ShapedLink {
    name: String,
}

/// Runs `ip`/`tc` with `args`; the error names the whole command.
fn run(program: &str, args: &[&str]) -> Result<(), ShapeError> {
    let shown = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| ShapeError::Command {
            command: shown.clone(),
            why: format!("{e} (install iproute2)"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ShapeError::Command {
            command: shown,
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl ShapedLink {
    /// A new namespace (named after this process and `tag`) with its loopback up and an
    /// `htb` qdisc whose default class is unlimited.
    ///
    /// # Errors
    /// Not root, or `ip`/`tc` failed.
    pub fn create(tag: &str) -> Result<Self, ShapeError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(ShapeError::NotRoot);
        }
        let name = format!("sm-{}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        let link = ShapedLink { name };
        let n = link.name.as_str();
        // An Ethernet-sized MTU: loopback's 64 KiB segments would leave a slow link in bursts
        // of half a second.
        run("ip", &["-n", n, "link", "set", "lo", "mtu", "1500", "up"])?;
        run(
            "tc",
            &[
                "-n", n, "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default",
                "10",
            ],
        )?;
        run(
            "tc",
            &[
                "-n", n, "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb",
                "rate", "10gbit", "quantum", "60000",
            ],
        )?;
        Ok(link)
    }

    /// The namespace's name (`ip -n NAME …`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves the calling thread into the namespace.
    ///
    /// # Errors
    /// The namespace cannot be opened or entered.
    pub fn enter(&self) -> Result<(), ShapeError> {
        let err = |why: String| ShapeError::Enter {
            name: self.name.clone(),
            why,
        };
        let file = std::fs::File::open(format!("/run/netns/{}", self.name))
            .map_err(|e| err(e.to_string()))?;
        // SAFETY: setns on an open namespace file descriptor affects only this thread.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        if rc == 0 {
            Ok(())
        } else {
            Err(err(std::io::Error::last_os_error().to_string()))
        }
    }

    /// Limits traffic to TCP `port` (inside the namespace) to `kbps`.
    ///
    /// # Errors
    /// `tc` failed.
    pub fn shape_port(&self, port: u16, kbps: u32) -> Result<(), ShapeError> {
        let n = self.name.as_str();
        let rate = format!("{kbps}kbit");
        run(
            "tc",
            &[
                "-n", n, "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb",
                "rate", &rate, "ceil", &rate,
            ],
        )?;
        let port = port.to_string();
        run(
            "tc",
            &[
                "-n", n, "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "u32",
                "match", "ip", "dport", &port, "0xffff", "flowid", "1:20",
            ],
        )
    }

    /// Changes the shaped port's rate.
    ///
    /// # Errors
    /// `tc` failed.
    pub fn set_rate(&self, kbps: u32) -> Result<(), ShapeError> {
        let rate = format!("{kbps}kbit");
        run(
            "tc",
            &[
                "-n", &self.name, "class", "change", "dev", "lo", "parent", "1:", "classid",
                "1:20", "htb", "rate", &rate, "ceil", &rate,
            ],
        )
    }
}

impl Drop for ShapedLink {
    fn drop(&mut self) {
        // Removing the namespace removes its loopback and qdisc with it.
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}
