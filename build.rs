const COMMANDS: &[&str] = &["connect", "send", "close", "reconnect", "inspect"];

fn main() {
    tauri_plugin::Builder::new(COMMANDS).build();
}
