//! The example's demo server on its own, outside the app: `realtime-demo-server [--port N]`.
//!
//! It listens on `127.0.0.1` (port 0, the default, picks a free one) and prints its base URL as the first line of
//! stdout, e.g. `http://127.0.0.1:41234`. Start the app with `REALTIME_DEMO_SERVER=127.0.0.1:41234` to use it
//! instead of the embedded one: then the server outlives the app (the end-to-end test reads its `/status` after
//! the app quit), and stopping and restarting it shows the app's streams reconnecting. It runs until killed.

use std::io::Write as _;

use realtime_example_lib::demo::{DemoConfig, DemoServer};

fn port_from_args() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let mut port = 0;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--port" => args.next().ok_or("--port needs a value")?,
            other => match other.strip_prefix("--port=") {
                Some(v) => v.to_owned(),
                None => {
                    return Err(format!(
                        "unknown argument {other:?}; usage: realtime-demo-server [--port N]"
                    ))
                }
            },
        };
        port = value
            .parse()
            .map_err(|_| format!("--port must be 0..65535, got {value:?}"))?;
    }
    Ok(port)
}

#[tokio::main]
async fn main() {
    let port = port_from_args().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let server = DemoServer::start_on(port, DemoConfig::default())
        .await
        .unwrap_or_else(|e| {
            eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        });
    println!("http://{}", server.addr());
    let _ = std::io::stdout().flush();
    std::future::pending::<()>().await;
}
