// `generate_context!` needs the page's build output (`../dist`, from `npm run build` in benches/webview) at
// compile time. `cargo build --workspace` (scripts/test) also compiles this crate without building the page
// first: give it a placeholder page then, which scripts/bench replaces with the real one before its release build.
fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist");
    if !dist.join("index.html").exists() {
        std::fs::create_dir_all(&dist).expect("cannot create benches/webview/dist");
        std::fs::write(
            dist.join("index.html"),
            "<!doctype html><title>realtime bench</title><p>Placeholder: run <code>scripts/bench</code>, which \
             builds the bench page (<code>npm run build</code> in benches/webview) before the app.</p>\n",
        )
        .expect("cannot write the placeholder page");
    }
    tauri_build::build()
}
