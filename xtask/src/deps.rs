//! System pieces the workspace needs, checked before anything is built.
//!
//! Missing pieces are installed with apt-get when this is Debian/Ubuntu and we are root;
//! otherwise the exact command is printed and xtask exits with status 2.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

/// One thing the build or the tests need, and the Debian package that provides it.
struct Need {
    what: &'static str,
    package: &'static str,
    present: fn() -> bool,
}

fn has_command(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn pkg_config(lib: &str) -> bool {
    Command::new("pkg-config")
        .args(["--exists", lib])
        .status()
        .is_ok_and(|s| s.success())
}

/// bindgen (through ffmpeg-sys-next) loads libclang at build time.
fn libclang() -> bool {
    if std::env::var_os("LIBCLANG_PATH").is_some() {
        return true;
    }
    [
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/local/lib",
    ]
    .iter()
    .flat_map(|dir| {
        let mut dirs = vec![Path::new(dir).to_path_buf()];
        if let Ok(entries) = std::fs::read_dir(dir) {
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("llvm-"))
                    .map(|e| e.path().join("lib")),
            );
        }
        dirs
    })
    .any(|dir| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libclang"))
        })
    })
}

macro_rules! lib {
    ($name:literal, $pkg:literal) => {
        Need {
            what: $name,
            package: $pkg,
            present: || pkg_config($name),
        }
    };
}

/// What building and testing the workspace needs.
fn needs() -> Vec<Need> {
    vec![
        Need {
            what: "a C toolchain (cc)",
            package: "build-essential",
            present: || has_command("cc"),
        },
        Need {
            what: "pkg-config",
            package: "pkg-config",
            present: || has_command("pkg-config"),
        },
        lib!("libavcodec", "libavcodec-dev"),
        lib!("libavformat", "libavformat-dev"),
        lib!("libavutil", "libavutil-dev"),
        lib!("libswscale", "libswscale-dev"),
        lib!("libswresample", "libswresample-dev"),
        lib!("libavfilter", "libavfilter-dev"),
        Need {
            what: "clang",
            package: "clang",
            present: || has_command("clang"),
        },
        Need {
            what: "libclang",
            package: "libclang-dev",
            present: libclang,
        },
        Need {
            what: "the ffmpeg CLI",
            package: "ffmpeg",
            present: || has_command("ffmpeg"),
        },
        Need {
            what: "nginx (the RTMP peer in tests)",
            package: "nginx",
            present: || has_command("nginx"),
        },
        Need {
            what: "nginx's RTMP module",
            package: "libnginx-mod-rtmp",
            present: || Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so").exists(),
        },
        Need {
            what: "nginx's stream module (TLS in front of nginx-rtmp, in the RTMPS tests)",
            package: "libnginx-mod-stream",
            present: || Path::new("/usr/lib/nginx/modules/ngx_stream_module.so").exists(),
        },
        Need {
            what: "the ffprobe CLI",
            package: "ffmpeg",
            present: || has_command("ffprobe"),
        },
        Need {
            what: "valgrind (instruction counts for the gate)",
            package: "valgrind",
            present: || has_command("valgrind"),
        },
        Need {
            what: "ip and tc (a shaped link in a network namespace, in tests)",
            package: "iproute2",
            present: || has_command("ip") && has_command("tc"),
        },
        Need {
            what: "promtool (checks the Prometheus exposition in tests)",
            package: "prometheus",
            present: || has_command("promtool"),
        },
        Need {
            what: "the Vulkan loader (the GPU renderer)",
            package: "libvulkan1",
            present: || has_library("libvulkan.so.1"),
        },
        Need {
            what: "Mesa's software Vulkan driver, lavapipe (GPU tests without a GPU)",
            package: "mesa-vulkan-drivers",
            present: || {
                std::fs::read_dir("/usr/share/vulkan/icd.d").is_ok_and(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd"))
                })
            },
        },
        Need {
            what: "EGL (the GL backend)",
            package: "libegl1",
            present: || has_library("libEGL.so.1"),
        },
        Need {
            what: "Mesa's GL drivers (llvmpipe for the GL backend)",
            package: "libgl1-mesa-dri",
            present: || {
                std::fs::read_dir("/usr/lib").is_ok_and(|d| {
                    d.flatten()
                        .any(|e| e.path().join("dri/swrast_dri.so").exists())
                })
            },
        },
    ]
}

/// Whether the dynamic linker knows `name` (`ldconfig -p`).
fn has_library(name: &str) -> bool {
    Command::new("ldconfig")
        .arg("-p")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(name))
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes sure every system piece is there. `Ok(None)` when all is well; `Ok(Some(code))` when
/// the caller should exit with `code` (things are missing and could not be installed here).
pub fn ensure() -> Result<Option<ExitCode>> {
    let missing: Vec<Need> = needs().into_iter().filter(|n| !(n.present)()).collect();
    if missing.is_empty() {
        return Ok(None);
    }
    let mut packages: Vec<&str> = missing.iter().map(|n| n.package).collect();
    packages.dedup();
    let what: Vec<&str> = missing.iter().map(|n| n.what).collect();
    let debian = Path::new("/etc/debian_version").exists();
    if debian && is_root() {
        eprintln!(
            "xtask: missing {}; installing {} with apt-get",
            what.join(", "),
            packages.join(" ")
        );
        apt_install(&packages)?;
        let still: Vec<&str> = needs()
            .into_iter()
            .filter(|n| !(n.present)())
            .map(|n| n.what)
            .collect();
        if !still.is_empty() {
            bail!("still missing after apt-get install: {}", still.join(", "));
        }
        return Ok(None);
    }
    eprintln!("xtask: cannot build: missing {}.", what.join(", "));
    if debian {
        eprintln!(
            "Install them with:\n  sudo apt-get install -y {}",
            packages.join(" ")
        );
    } else {
        eprintln!(
            "Install FFmpeg's development libraries (libavcodec, libavformat, libavutil, libswscale, \
             libswresample, libavfilter) with pkg-config files, clang with libclang, and the ffmpeg \
             and ffprobe commands; on Debian/Ubuntu:\n  sudo apt-get install -y {}",
            packages.join(" ")
        );
    }
    Ok(Some(ExitCode::from(2)))
}

/// Refreshes the package lists and installs `packages` (Debian/Ubuntu, as root).
fn apt_install(packages: &[&str]) -> Result<()> {
    let update = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .context("running apt-get update")?;
    if !update.success() {
        bail!("apt-get update failed ({update})");
    }
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get install")?;
    if !install.success() {
        bail!("apt-get install {} failed ({install})", packages.join(" "));
    }
    Ok(())
}

/// The node-media-server version `perf network --peers` measures (2.x honours the guide's
/// chunk_size, gop_cache, ping and ping_timeout; 4.x ignores them).
pub const NODE_MEDIA_SERVER: &str = "node-media-server@2.7.4";

/// The gungraun runner the benches' gungraun crate needs: the same version, pinned.
pub const GUNGRAUN: &str = "0.18.2";

/// Makes sure `gungraun-runner` GUNGRAUN is installed (cargo install, about a minute).
/// `Ok(Some(code))` when it could not be.
pub fn gungraun_runner() -> Result<Option<ExitCode>> {
    cargo_tool(
        "gungraun-runner",
        "gungraun-runner",
        GUNGRAUN,
        &["--version"],
    )
}

/// The cargo-fuzz that `cargo xtask fuzz` runs (on stable Rust, with `--sanitizer none`).
pub const CARGO_FUZZ: &str = "0.13.2";

/// Makes sure `cargo fuzz` CARGO_FUZZ is installed (cargo install, a few minutes).
/// `Ok(Some(code))` when it could not be.
pub fn cargo_fuzz() -> Result<Option<ExitCode>> {
    cargo_tool(
        "cargo-fuzz",
        "cargo-fuzz",
        CARGO_FUZZ,
        &["fuzz", "--version"],
    )
}

/// Makes sure `program` (from crate `krate`) answers `version_args` with `version`, else
/// installs that version with `cargo install --locked`. `Ok(Some(code))` when it could not.
fn cargo_tool(
    program: &str,
    krate: &str,
    version: &str,
    version_args: &[&str],
) -> Result<Option<ExitCode>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let installed = Command::new(program)
        .args(version_args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if installed.as_deref().is_some_and(|v| v.contains(version)) {
        return Ok(None);
    }
    eprintln!(
        "xtask: installing {krate} {version} (found {}) with cargo install",
        installed.as_deref().map_or("none", str::trim)
    );
    let status = Command::new(&cargo)
        .args(["install", "--locked", krate, "--version", version])
        .status()
        .with_context(|| format!("running cargo install {krate}"))?;
    if !status.success() {
        eprintln!(
            "xtask: could not install {krate}; install it with:\n  cargo install --locked \
             {krate} --version {version}"
        );
        return Ok(Some(ExitCode::from(2)));
    }
    Ok(None)
}

/// The toolchain components `cargo xtask test` runs: rustfmt (`cargo fmt --check`) and clippy.
/// Added with rustup when missing. `Ok(Some(code))` when one is missing and could not be added.
pub fn components() -> Result<Option<ExitCode>> {
    const COMPONENTS: [(&str, &str); 2] = [("fmt", "rustfmt"), ("clippy", "clippy")];
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let missing = || -> Vec<&str> {
        COMPONENTS
            .iter()
            .filter(|(sub, _)| {
                !Command::new(&cargo)
                    .args([sub, "--version"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .map(|(_, component)| *component)
            .collect()
    };
    let wanted = missing();
    if wanted.is_empty() {
        return Ok(None);
    }
    eprintln!(
        "xtask: adding the toolchain components {} with rustup",
        wanted.join(" ")
    );
    let _ = Command::new("rustup")
        .args(["component", "add"])
        .args(&wanted)
        .status();
    let still = missing();
    if !still.is_empty() {
        eprintln!(
            "xtask: could not add {0}; add them with:\n  rustup component add {0}",
            still.join(" ")
        );
        return Ok(Some(ExitCode::from(2)));
    }
    Ok(None)
}

/// Installs node-media-server into `dir` with npm when it is not there yet. `Ok(Some(code))`
/// when node or npm is missing and could not be installed.
pub fn node_media_server(dir: &Path) -> Result<Option<ExitCode>> {
    if dir
        .join("node_modules/node-media-server/package.json")
        .exists()
    {
        return Ok(None);
    }
    for (tool, package) in [("node", "nodejs"), ("npm", "npm")] {
        if has_command(tool) {
            continue;
        }
        if Path::new("/etc/debian_version").exists() && is_root() {
            eprintln!("xtask: installing {package} with apt-get (for node-media-server)");
            apt_install(&[package])?;
        } else {
            eprintln!(
                "xtask: --peers needs {tool}. Install it with:\n  sudo apt-get install -y {package}"
            );
            return Ok(Some(ExitCode::from(2)));
        }
    }
    std::fs::create_dir_all(dir)?;
    eprintln!(
        "xtask: installing {NODE_MEDIA_SERVER} into {}",
        dir.display()
    );
    let ok = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
        .arg(dir)
        .arg(NODE_MEDIA_SERVER)
        .status()
        .context("running npm")?
        .success();
    if !ok {
        bail!("npm install {NODE_MEDIA_SERVER} failed");
    }
    Ok(None)
}
