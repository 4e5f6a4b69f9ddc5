//! The `tap` example as a real process, for the tests that drive it (`mod tapkit;`).
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, SystemTime},
};

/// The `tap` example binary. Plain `cargo test` builds every example before it runs any test ("examples — to
/// ensure they compile", `cargo help test`), and puts it in `target/<profile>/examples/`, beside the
/// `deps/` folder that holds this test binary. A narrower run (`cargo test --test resilience`) does not
/// build examples: then, or when the binary is older than a source it was built from (its `.d` file lists
/// them), it is built here with the cargo that runs this test.
pub fn tap_binary() -> &'static Path {
    static TAP: OnceLock<PathBuf> = OnceLock::new();
    TAP.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps/<test binary>")
            .to_path_buf();
        let tap = profile_dir
            .join("examples")
            .join(format!("tap{}", std::env::consts::EXE_SUFFIX));
        if !is_fresh(&tap, &profile_dir.join("examples").join("tap.d")) {
            build_tap(&profile_dir);
        }
        assert!(
            tap.is_file(),
            "expected the tap example at {}, got nothing there",
            tap.display()
        );
        tap
    })
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn is_fresh(bin: &Path, dep_info: &Path) -> bool {
    let (Some(built), Ok(deps)) = (mtime(bin), std::fs::read_to_string(dep_info)) else {
        return false;
    };
    // "<target>: <source> <source> ..." with spaces in paths escaped as "\ ".
    let Some(first) = deps.lines().next() else {
        return false;
    };
    let Some((_, sources)) = first.split_once(": ") else {
        return false;
    };
    let sources = sources.replace("\\ ", "\u{0}");
    sources
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(s.replace('\u{0}', " ")))
        .all(|s| mtime(&s).is_some_and(|m| m <= built))
}

fn build_tap(profile_dir: &Path) {
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "--quiet",
        "-p",
        env!("CARGO_PKG_NAME"),
        "--example",
        "tap",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(target_dir) = profile_dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target_dir);
    }
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    let mut child = cmd.spawn().expect("cargo, to build the tap example");
    // Bounded: a cold build of one example on a slow machine takes well under this.
    let deadline = std::time::Instant::now() + Duration::from_secs(900);
    loop {
        if let Some(status) = child.try_wait().expect("waiting for cargo") {
            assert!(
                status.success(),
                "expected `cargo build --example tap` to succeed, got {status}"
            );
            return;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("expected `cargo build --example tap` to finish within 900 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn tap(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(tap_binary());
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}
