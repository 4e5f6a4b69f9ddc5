//! The benchmark app of `tauri-plugin-realtime` (run it with `scripts/bench`).
//!
//! On start it launches its bench server ([`server`]) as a child process of its own binary (`--serve`), so that
//! the app process's memory and CPU time are the client side's alone, and opens one window whose page
//! (`benches/webview/src/main.ts`) runs the whole suite by itself: this plugin over WebSocket and SSE, the official
//! `tauri-plugin-websocket`, the webview's own `WebSocket`, and polling. The page reports each result through
//! [`bench_result`] and ends with [`bench_finish`], which writes the JSON report and quits the app.
//!
//! Environment: `BENCH_OUT` (JSON report, default `artifacts/bench.json`), `BENCH_QUICK=1` (a short smoke run),
//! `BENCH_REPS` (repetitions, default 3, 1 when quick), `BENCH_ONLY` (comma-separated workloads: `tp64`, `tp16k`,
//! `latency`, `poll`, `scaling`, `burst`, `micro`), `BENCH_TIMEOUT_S` (the whole run, default 1200: then the results so far
//! are written and the app exits with status 3),
//! `BENCH_MECHS` (comma-separated mechanisms, e.g. `realtime-ws`: to profile one), `BENCH_PROTOCOLS` (the
//! scaling workload's, in order: `http1,http2` by default; one alone measures it in a fresh app), `BENCH_STREAMS`
//! (the scaling workload's steps, e.g. `10000`; by default `1,10,100,1000,10000`, `1,10,100` when quick),
//! `BENCH_ARGUMENT_MAX_FRAME` (the mean frame size up to which the direct route hands a batch to WebKitGTK as an
//! argument; 0: always a script), `BENCH_ARGUMENT_MIN_BATCH` (the frames a batch needs for that; default 2).

// Keeps a console window from opening next to the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod procstat;
mod server;

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::{json, Value};
use tauri::{AppHandle, Manager, RunEvent};

/// Streams the plugin may open at once in this app: the scaling workload opens 10 000 (and the previous step's
/// may still be closing).
const MAX_STREAMS: usize = 16_384;

/// The bench server's child process gives up after this long, whatever happens to the app.
const SERVER_MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// What the page runs, from the environment.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    http: String,
    /// The same server over TLS and HTTP/2: the idle-stream scaling runs over both.
    https: String,
    ws: String,
    quick: bool,
    reps: u32,
    workloads: Vec<String>,
    tp_small_n: u32,
    tp_large_n: u32,
    latency_rates: Vec<u32>,
    latency_s: f64,
    warm_s: f64,
    poll_rates: Vec<u32>,
    poll_s: f64,
    scaling: Vec<u32>,
    /// The scaling workload's protocols, in order: `HTTP/1.1`, `HTTP/2` (`BENCH_PROTOCOLS=http1,http2`).
    protocols: Vec<String>,
    idle_s: f64,
    burst_n: u32,
    burst_size: u32,
    burst_spin_us: f64,
    burst_mechs: Vec<String>,
    burst_reps: u32,
    mechs: Vec<String>,
}

/// Every workload, all run by default; `micro` is a diagnostic of where the webview's time goes.
const WORKLOADS: [&str; 7] = [
    "tp64", "tp16k", "latency", "poll", "scaling", "burst", "micro",
];

impl Config {
    fn from_env(port: u16, tls_port: u16) -> Result<Self, String> {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let reps = match std::env::var("BENCH_REPS") {
            Ok(v) if !v.is_empty() => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=50).contains(n))
                .ok_or(format!("BENCH_REPS must be 1..50, got {v:?}"))?,
            _ if quick => 1,
            _ => 3,
        };
        let workloads = match std::env::var("BENCH_ONLY") {
            Ok(v) if !v.trim().is_empty() => {
                let list: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).collect();
                if let Some(bad) = list.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
                    return Err(format!(
                        "BENCH_ONLY: unknown workload {bad:?} (known: {})",
                        WORKLOADS.join(", ")
                    ));
                }
                list
            }
            _ => WORKLOADS.iter().map(|s| (*s).to_owned()).collect(),
        };
        let all_mechs = ["realtime-ws", "realtime-sse", "official-ws", "native-ws"];
        Ok(Self {
            http: format!("http://127.0.0.1:{port}"),
            https: format!("https://127.0.0.1:{tls_port}"),
            ws: format!("ws://127.0.0.1:{port}"),
            quick,
            reps,
            workloads,
            tp_small_n: if quick { 10_000 } else { 50_000 },
            tp_large_n: if quick { 500 } else { 2_000 },
            latency_rates: vec![100, 1_000],
            latency_s: if quick { 1.5 } else { 3.5 },
            warm_s: 0.5,
            poll_rates: vec![100, 1_000],
            poll_s: if quick { 4.0 } else { 6.0 },
            scaling: match std::env::var("BENCH_STREAMS") {
                Ok(v) if !v.trim().is_empty() => v
                    .split(',')
                    .map(|n| match n.trim().parse::<u32>() {
                        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
                        _ => Err(format!(
                            "BENCH_STREAMS: {n:?} is not a count of streams from 1 to 10000"
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                _ if quick => vec![1, 10, 100],
                _ => vec![1, 10, 100, 1_000, 10_000],
            },
            protocols: match std::env::var("BENCH_PROTOCOLS") {
                Ok(v) if !v.trim().is_empty() => v
                    .split(',')
                    .map(|p| match p.trim() {
                        "http1" => Ok("HTTP/1.1".to_owned()),
                        "http2" => Ok("HTTP/2".to_owned()),
                        other => Err(format!(
                            "BENCH_PROTOCOLS: unknown protocol {other:?} (known: http1, http2)"
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                _ => vec!["HTTP/1.1".to_owned(), "HTTP/2".to_owned()],
            },
            idle_s: if quick { 2.0 } else { 5.0 },
            burst_n: if quick { 20_000 } else { 200_000 },
            burst_size: 1024,
            burst_spin_us: 10.0,
            burst_mechs: all_mechs
                .iter()
                .filter(|m| !quick || **m != "official-ws")
                .map(|s| (*s).to_owned())
                .collect(),
            burst_reps: 1,
            mechs: std::env::var("BENCH_MECHS")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

struct Bench {
    config: Config,
    port: u16,
    out: PathBuf,
    started: Instant,
    results: Mutex<Vec<Value>>,
    sampler: Mutex<Option<procstat::Sampler>>,
    server: Mutex<Option<Child>>,
}

impl Bench {
    fn report(&self, page: Value, status: &str) -> std::io::Result<()> {
        let results = self
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let report = json!({
            "status": status,
            "config": self.config,
            "page": page,
            "elapsedS": self.started.elapsed().as_secs_f64(),
            "results": results,
        });
        if let Some(dir) = self.out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.out, serde_json::to_vec_pretty(&report)?)?;
        eprintln!("bench: wrote {}", self.out.display());
        Ok(())
    }

    fn stop_server(&self) {
        if let Some(mut child) = self.server.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tauri::command]
fn bench_config(bench: tauri::State<'_, Bench>) -> Config {
    bench.config.clone()
}

/// A progress line from the page, printed on stderr.
#[tauri::command]
fn bench_log(line: String) {
    eprintln!("bench: {line}");
}

#[tauri::command]
fn bench_result(result: Value, bench: tauri::State<'_, Bench>) {
    bench
        .results
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(result);
}

/// Writes the report and quits: status 0, or 1 when the page says it failed.
#[tauri::command]
fn bench_finish<R: tauri::Runtime>(
    page: Value,
    failed: bool,
    app: AppHandle<R>,
    bench: tauri::State<'_, Bench>,
) {
    let status = if failed { "failed" } else { "done" };
    let code = match bench.report(page, status) {
        Ok(()) if !failed => 0,
        Ok(()) => 1,
        Err(e) => {
            eprintln!("bench: cannot write {}: {e}", bench.out.display());
            1
        }
    };
    bench.stop_server();
    app.exit(code);
}

/// Memory and CPU time of the app process and its WebKit processes.
#[tauri::command]
fn proc_stats() -> procstat::Snapshot {
    procstat::snapshot()
}

#[tauri::command]
fn sample_start(interval_ms: u64, bench: tauri::State<'_, Bench>) {
    let sampler = procstat::Sampler::start(
        Duration::from_millis(interval_ms.clamp(5, 1000)),
        bench.port,
    );
    if let Some(old) = bench
        .sampler
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .replace(sampler)
    {
        old.stop();
    }
}

#[tauri::command]
fn sample_stop(bench: tauri::State<'_, Bench>) -> Vec<procstat::Sample> {
    let sampler = bench
        .sampler
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    sampler.map(procstat::Sampler::stop).unwrap_or_default()
}

/// The wall clock the bench server stamps its messages with (epoch ms), for the page to calibrate its own.
#[tauri::command]
fn clock_now() -> f64 {
    server::epoch_ms()
}

/// The `micro` diagnostic: sends `count` batches of `frames` message frames of `size` bytes shaped like this
/// plugin's to the main webview, by `mode`: `obj` the plugin's event route (an event whose payload is the array
/// of frame objects), `str` an event with that array as one JSON string, `compact` an event with the compact
/// encoding as a string, `channel` the compact encoding through a `Channel` (an experiment, see
/// [`channel_send`]), `direct` the plugin's direct route as it delivers (the receiver id is `event`), and its two
/// forms whatever the frames' size: `script`, one script per batch calling the bindings' receiver, and
/// `gvariant`, the compact batch as the argument of a function that never changes (WebKitGTK only). It separates
/// the delivery path's cost from the rest.
#[tauri::command]
#[allow(clippy::too_many_arguments)]
fn micro_emit<R: tauri::Runtime>(
    app: AppHandle<R>,
    event: String,
    count: u32,
    frames: u32,
    size: usize,
    mode: String,
    channel: tauri::ipc::Channel<tauri::ipc::InvokeResponseBody>,
) -> Result<(), String> {
    use std::sync::Arc;
    use tauri::{Emitter, EventTarget};
    use tauri_plugin_realtime::{core::wire, Frame, Transport};
    let webview = app.get_webview_window("main").ok_or("no main window")?;
    let mut seq = 0u64;
    for _ in 0..count {
        let batch: Vec<Arc<Frame>> = (0..frames)
            .map(|_| {
                seq += 1;
                Arc::new(Frame::Message {
                    seq,
                    transport: Transport::Websocket,
                    event: None,
                    data: server::message(seq, size),
                    last_event_id: None,
                    binary: false,
                })
            })
            .collect();
        let target = EventTarget::AnyLabel {
            label: "main".into(),
        };
        let sent = match mode.as_str() {
            // Exactly as the plugin's relay emits a batch on the event route.
            "obj" => app.emit_to(target, &event, &batch),
            "str" => app.emit_to(
                target,
                &event,
                serde_json::to_string(&batch).map_err(|e| e.to_string())?,
            ),
            "compact" => app.emit_to(
                target,
                &event,
                String::from_utf8(wire::encode(&batch)).map_err(|e| e.to_string())?,
            ),
            "channel" => channel_send(&channel, &batch),
            // Exactly as the plugin's direct route delivers a batch, in the form it picks.
            "direct" => tauri_plugin_realtime::testing::receiver_deliver(&webview, &event, &batch),
            "script" => webview.eval(tauri_plugin_realtime::testing::receiver_script(
                &event, &batch,
            )),
            "gvariant" => gvariant_deliver(&webview, &event, &batch),
            other => return Err(format!("unknown micro mode {other:?}")),
        };
        sent.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The `channel` micro mode, an experiment kept to re-measure why the plugin has no channel route
/// (docs/DECISIONS.md): the compact batch through a `tauri::ipc::Channel` as the plugin once sent it. Tauri
/// evaluates a channel message directly only under 8 KiB and has the webview fetch anything larger, so a batch
/// goes in parts of about 6 KiB, each a JSON string evaluated directly, or, from 64 KiB, whole as bytes in one
/// fetch. Parts are cut by data length, which for these frames (alike, nothing to escape) is their encoded length.
fn channel_send(
    channel: &tauri::ipc::Channel<tauri::ipc::InvokeResponseBody>,
    frames: &[std::sync::Arc<tauri_plugin_realtime::Frame>],
) -> tauri::Result<()> {
    use tauri::ipc::InvokeResponseBody;
    use tauri_plugin_realtime::{core::wire, Frame};
    const PART: usize = 6144;
    const SPLIT_MAX: usize = 64 << 10;
    const TAURI_DIRECT_MAX: usize = 8192;
    let send = |part: &[std::sync::Arc<Frame>]| {
        let text = String::from_utf8(wire::encode(part)).unwrap_or_default();
        let mut literal = String::with_capacity(text.len() + 2);
        wire::push_json_str(&mut literal, &text);
        channel.send(if literal.len() < TAURI_DIRECT_MAX {
            InvokeResponseBody::Json(literal)
        } else {
            InvokeResponseBody::Raw(text.into_bytes())
        })
    };
    if frames.iter().map(|f| f.approx_len()).sum::<usize>() >= SPLIT_MAX {
        return channel.send(InvokeResponseBody::Raw(wire::encode(frames)));
    }
    let (mut start, mut size) = (0, 0);
    for (i, f) in frames.iter().enumerate() {
        if let Frame::Message { data, .. } = f.as_ref() {
            size += data.len() + 3;
        }
        if size >= PART || i + 1 == frames.len() {
            send(&frames[start..=i])?;
            (start, size) = (i + 1, 0);
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn gvariant_deliver<R: tauri::Runtime>(
    webview: &tauri::WebviewWindow<R>,
    id: &str,
    batch: &[std::sync::Arc<tauri_plugin_realtime::Frame>],
) -> tauri::Result<()> {
    tauri_plugin_realtime::testing::receiver_argument(webview, id, batch)
}

#[cfg(not(target_os = "linux"))]
fn gvariant_deliver<R: tauri::Runtime>(
    _webview: &tauri::WebviewWindow<R>,
    _id: &str,
    _batch: &[std::sync::Arc<tauri_plugin_realtime::Frame>],
) -> tauri::Result<()> {
    Err(tauri::Error::WebviewNotFound)
}

/// `realtime-bench --serve`: the bench server alone, over cleartext HTTP/1.1 and, with the same routes and
/// state, over TLS with HTTP/2 (a CA of its own, made at start). Prints `PORT <n>`, then `TLS <port> <the CA's
/// DER in hex>`, and exits when its stdin closes (the app is gone) or after [`SERVER_MAX_LIFETIME`].
fn serve() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start the bench server's runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot listen on 127.0.0.1");
        let port = listener.local_addr().expect("no local address").port();
        let app = server::router();
        let pki = realtime_testkit::tls::Pki::new();
        let (tls, _) = realtime_testkit::tls::serve_tls(
            &pki,
            realtime_testkit::tls::TlsServe::h2(),
            app.clone(),
        )
        .await;
        let ca: String = pki.ca_der.iter().map(|b| format!("{b:02x}")).collect();
        println!("PORT {port}");
        println!("TLS {} {ca}", tls.port());
        std::thread::spawn(|| {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
            std::process::exit(0);
        });
        tokio::select! {
            r = axum::serve(listener, app) => r.expect("bench server failed"),
            _ = tokio::time::sleep(SERVER_MAX_LIFETIME) => {}
        }
    });
}

/// The bench server as the app knows it.
struct Served {
    child: Child,
    port: u16,
    /// Its TLS (HTTP/2) port, and the CA to trust for it.
    tls_port: u16,
    ca_der: Vec<u8>,
}

fn start_server() -> Result<Served, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut child = Command::new(exe)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the bench server: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the bench server's port: {e}"))?;
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .ok_or(format!("the bench server said {line:?}, not its port"))?;
    let mut tls = String::new();
    stdout
        .read_line(&mut tls)
        .map_err(|e| format!("cannot read the bench server's TLS port: {e}"))?;
    let (tls_port, ca_der) = tls
        .trim()
        .strip_prefix("TLS ")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(p, hex)| {
            let der = (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|b| u8::from_str_radix(b, 16).ok())
                })
                .collect::<Option<Vec<u8>>>()?;
            Some((p.parse().ok()?, der))
        })
        .ok_or(format!(
            "the bench server said {tls:?}, not its TLS port and CA"
        ))?;
    Ok(Served {
        child,
        port,
        tls_port,
        ca_der,
    })
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--serve") {
        serve();
        return;
    }
    // To compare the direct route's two forms in one build (src/relay/receiver.rs): 0 sends every batch as a script.
    if let Some(max) = std::env::var("BENCH_ARGUMENT_MAX_FRAME")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        tauri_plugin_realtime::testing::set_argument_max_frame(max);
    }
    if let Some(min) = std::env::var("BENCH_ARGUMENT_MIN_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        tauri_plugin_realtime::testing::set_argument_min_batch(min);
    }
    let Served {
        child,
        port,
        tls_port,
        ca_der,
    } = start_server().unwrap_or_else(|e| {
        eprintln!("bench: {e}");
        std::process::exit(2);
    });
    let config = Config::from_env(port, tls_port).unwrap_or_else(|e| {
        eprintln!("bench: {e}");
        std::process::exit(2);
    });
    let timeout = std::env::var("BENCH_TIMEOUT_S")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1200);
    let out = PathBuf::from(
        std::env::var("BENCH_OUT").unwrap_or_else(|_| "artifacts/bench.json".to_owned()),
    );
    eprintln!(
        "bench: server on 127.0.0.1:{port} (TLS, HTTP/2: {tls_port}), workloads {:?}, {} repetition(s){}",
        config.workloads,
        config.reps,
        if config.quick { ", quick" } else { "" }
    );
    let bench = Bench {
        config,
        port,
        out,
        started: Instant::now(),
        results: Mutex::default(),
        sampler: Mutex::default(),
        server: Mutex::new(Some(child)),
    };
    let app = tauri::Builder::default()
        .plugin(
            tauri_plugin_realtime::Builder::new()
                .max_connections(MAX_STREAMS)
                .max_subscriptions_per_webview(MAX_STREAMS)
                // The bench server's own CA, for its HTTP/2 port.
                .add_root_certificate(ca_der)
                .build(),
        )
        .plugin(tauri_plugin_websocket::init())
        .manage(bench)
        .invoke_handler(tauri::generate_handler![
            bench_config,
            bench_log,
            bench_result,
            bench_finish,
            proc_stats,
            sample_start,
            sample_stop,
            clock_now,
            micro_emit
        ])
        .setup(move |app| {
            // The whole run is bounded: past the timeout, write what was measured and quit.
            let handle = app.handle().clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(timeout));
                eprintln!("bench: timed out after {timeout} s");
                let bench = handle.state::<Bench>();
                let _ = bench.report(json!(null), "timed out");
                bench.stop_server();
                std::process::exit(3);
            });
            Ok(())
        })
        .build(tauri::generate_context!())
        .expect("error while building the bench app");
    app.run(|app, event| {
        if let RunEvent::Exit = event {
            app.state::<Bench>().stop_server();
        }
    });
}
