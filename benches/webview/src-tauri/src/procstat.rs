//! Memory and CPU time of the app process and of the WebKit processes it started, read from `/proc` (Linux).

use std::{
    collections::HashMap,
    fs,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde::Serialize;

/// One process: resident memory and CPU time (user + system, all threads, in ms; 10 ms resolution).
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proc {
    pub pid: u32,
    pub rss_kb: u64,
    pub cpu_ms: f64,
}

/// The app process, and its WebKit web and network processes (zero when not found).
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub app: Proc,
    pub web: Proc,
    pub network: Proc,
}

fn ticks_per_s() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.
    100.0
}

/// `(comm, ppid, utime + stime in ticks)` from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(String, u32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let fields: Vec<&str> = text[close + 2..].split(' ').collect();
    // After the comm: state(0) ppid(1) ... utime(11) stime(12).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, ppid, utime + stime))
}

fn rss_kb(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn proc_of(pid: u32, ticks: u64) -> Proc {
    Proc {
        pid,
        rss_kb: rss_kb(pid),
        cpu_ms: ticks as f64 * 1000.0 / ticks_per_s(),
    }
}

/// Every process under `root`, found by walking `/proc/*/stat` for parent pids: `(pid, comm, ticks)`.
fn descendants(root: u32) -> Vec<(u32, String, u64)> {
    let mut all: HashMap<u32, (String, u32, u64)> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            {
                if let Some(s) = stat(pid) {
                    all.insert(pid, s);
                }
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (&pid, (comm, ppid, ticks)) in &all {
            if *ppid == parent {
                found.push((pid, comm.clone(), *ticks));
                frontier.push(pid);
            }
        }
    }
    found
}

/// The pids of the WebKit web and network processes under the app, once found.
#[derive(Debug, Default, Clone, Copy)]
struct Pids {
    web: Option<u32>,
    network: Option<u32>,
}

static PIDS: Mutex<Pids> = Mutex::new(Pids {
    web: None,
    network: None,
});

fn find_pids() -> Pids {
    let mut cached = PIDS.lock().unwrap_or_else(|p| p.into_inner());
    let gone = |p: Option<u32>| p.is_none_or(|pid| stat(pid).is_none());
    if gone(cached.web) || gone(cached.network) {
        for (pid, comm, _) in descendants(std::process::id()) {
            // `comm` is cut to 15 bytes: "WebKitWebProces", "WebKitNetworkPr".
            if comm.starts_with("WebKitWebProc") {
                cached.web = Some(pid);
            } else if comm.starts_with("WebKitNetwork") {
                cached.network = Some(pid);
            }
        }
    }
    *cached
}

/// Memory and CPU time of the app and its WebKit processes now.
pub fn snapshot() -> Snapshot {
    let me = std::process::id();
    let pids = find_pids();
    let of = |pid: Option<u32>| {
        pid.and_then(|pid| stat(pid).map(|(_, _, t)| proc_of(pid, t)))
            .unwrap_or_default()
    };
    Snapshot {
        app: stat(me).map(|(_, _, t)| proc_of(me, t)).unwrap_or_default(),
        web: of(pids.web),
        network: of(pids.network),
    }
}

/// One sample of resident memory during a burst, `t` in ms since sampling began, `at` in epoch ms; with the
/// bench server's count of messages sent so far (`GET /stats`), when it answered.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub t: f64,
    pub at: f64,
    pub server_sent: Option<u64>,
    pub app_rss_kb: u64,
    pub web_rss_kb: u64,
    pub network_rss_kb: u64,
}

/// Samples memory on a thread of its own, independent of the page (which is busy during a burst).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    pub fn start(every: Duration, server_port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let began = Instant::now();
            let mut samples = Vec::new();
            // Bounded: at most 10 minutes of samples.
            while !flag.load(Ordering::SeqCst) && began.elapsed() < Duration::from_secs(600) {
                let s = snapshot();
                samples.push(Sample {
                    t: began.elapsed().as_secs_f64() * 1000.0,
                    at: crate::server::epoch_ms(),
                    server_sent: server_sent(server_port),
                    app_rss_kb: s.app.rss_kb,
                    web_rss_kb: s.web.rss_kb,
                    network_rss_kb: s.network.rss_kb,
                });
                std::thread::sleep(every);
            }
            samples
        });
        Self { stop, thread }
    }

    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}

/// The bench server's `sent` counter, by a plain HTTP/1.1 GET of `/stats` on 127.0.0.1.
fn server_sent(port: u16) -> Option<u64> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = &text[text.find("\r\n\r\n")? + 4..];
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("sent")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = snapshot();
        assert_eq!(s.app.pid, std::process::id());
        assert!(s.app.rss_kb > 0);
        assert!(s.app.cpu_ms >= 0.0);
        assert_eq!(s.web.pid, 0, "no WebKit process under a test");
    }
}
