# Shared set-up for scripts/run-example and scripts/test: installs what is missing, and nothing twice.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXAMPLE="$ROOT/examples/tauri-app"
APT_PACKAGES=(libwebkit2gtk-4.1-dev xvfb webkit2gtk-driver)
# Real servers that only the tests start, each on a loopback port of its own (the example does not need them):
# an HTTP proxy and a SOCKS5 proxy. A daemon the package may start at install is never used.
TEST_APT_PACKAGES=(tinyproxy microsocks)

# CI builds once from a fresh clone: incremental caches would only take disk.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# System libraries for the webview, the virtual display and the WebDriver: only those not installed yet.
ensure_apt() {
  install_missing "${APT_PACKAGES[@]}"
}

# The servers the tests start (scripts/test only).
ensure_test_apt() {
  install_missing "${TEST_APT_PACKAGES[@]}"
}

install_missing() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

ensure_toolchains() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust with rustup (https://rustup.rs), then run this again." >&2
    exit 1
  fi
  if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
    echo "Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none)); install it, then run this again." >&2
    exit 1
  fi
}

# npm dependencies from the lock files; the guest bindings are built first because the example imports them.
ensure_npm() {
  if [ -n "${CI:-}" ] || [ ! -d "$ROOT/node_modules" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    say "npm ci (guest bindings)"
    (cd "$ROOT" && npm ci --no-audit --no-fund)
  fi
  say "building the guest bindings"
  (cd "$ROOT" && npm run --silent build)
  if [ -n "${CI:-}" ] || [ ! -d "$EXAMPLE/node_modules" ] || [ "$EXAMPLE/package-lock.json" -nt "$EXAMPLE/node_modules/.package-lock.json" ]; then
    say "npm ci (example app)"
    (cd "$EXAMPLE" && npm ci --no-audit --no-fund)
  fi
  say "building the example page"
  (cd "$EXAMPLE" && npm run --silent build)
}

# The bench app's page: the workspace builds the bench app too, and its build embeds the page.
ensure_bench_page() {
  local bench="$ROOT/benches/webview"
  if [ -n "${CI:-}" ] || [ ! -d "$bench/node_modules" ] || [ "$bench/package-lock.json" -nt "$bench/node_modules/.package-lock.json" ]; then
    say "npm ci (bench page)"
    (cd "$bench" && npm ci --no-audit --no-fund)
  fi
  say "building the bench page (typecheck, then vite)"
  (cd "$bench" && npm run --silent typecheck && npm run --silent build)
}
