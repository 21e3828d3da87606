#!/usr/bin/env bash
# A minimal Debian 12 root, to check what a truly fresh machine needs: built with mmdebstrap
# (variant minbase, like the debian:12 container image: apt, dpkg, bash, coreutils — no
# compiler, no curl, no git, no Python) from this machine's own apt sources.
#
#   scripts/fresh-debian.sh create ROOT
#   scripts/fresh-debian.sh run ROOT [--toolchain DIR] [--workdir DIR] [--env NAME=VALUE]... -- COMMAND...
#   scripts/fresh-debian.sh remove ROOT
#
# `run` executes COMMAND with bash inside ROOT, in new mount and PID namespaces (so nothing
# it starts outlives it), with /proc, /dev, a read-only /sys, a tmpfs /tmp, the host's DNS
# settings, and, with --toolchain, a Rust toolchain folder (e.g.
# ~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu) mounted read-only at /opt/rust with
# its bin/ on PATH: the one thing the README asks a user to install first. The environment is
# emptied except for HOME, PATH, LANG, CI and what --env adds. Needs root.
set -euo pipefail

say() { printf 'fresh-debian: %s\n' "$*" >&2; }
usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ "$(id -u)" -eq 0 ] || { say "run me as root (mmdebstrap, chroot and mounts need it)"; exit 1; }
[ $# -ge 2 ] || usage
action="$1" root="$2"
shift 2

sources() {
  # The machine's own apt sources: deb822 files first, the classic list otherwise.
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && { echo "$f"; return; }
  done
  [ -f /etc/apt/sources.list ] && { echo /etc/apt/sources.list; return; }
  say "no apt sources on this machine (/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list)"
  exit 1
}

case "$action" in
create)
  [ ! -e "$root" ] || { say "$root exists; remove it first"; exit 1; }
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    say "installing mmdebstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
  fi
  say "creating a minimal Debian 12 root in $root"
  mmdebstrap --variant=minbase --mode=root --quiet bookworm "$root" "$(sources)"
  # What a container runtime provides: a hosts file naming localhost.
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  # The certificate authorities this machine adds to Debian's (a proxy's, a company's): the
  # root's own ca-certificates package picks them up when setup.sh installs it, as it would on
  # a fresh machine on this network.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  fi
  ;;
run)
  [ -x "$root/bin/bash" ] || { say "$root is not a root made by \`$0 create\`"; exit 1; }
  toolchain="" workdir="/root" envs=()
  while [ $# -gt 0 ]; do
    case "$1" in
    --toolchain) toolchain="$2"; shift 2 ;;
    --workdir) workdir="$2"; shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) usage ;;
    esac
  done
  [ $# -gt 0 ] || usage
  path=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  [ -z "$toolchain" ] || path="/opt/rust/bin:$path"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # Inside fresh namespaces: the mounts vanish with them, and so does every process.
  exec unshare --mount --pid --fork --propagation private -- bash -euo pipefail -c '
    root="$1" toolchain="$2" workdir="$3" path="$4"; shift 4
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --rbind -o ro /sys "$root/sys" 2>/dev/null || mount -t sysfs -o ro sysfs "$root/sys"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    if [ -n "$toolchain" ]; then
      mkdir -p "$root/opt/rust"
      mount --bind "$toolchain" "$root/opt/rust"
      mount -o remount,bind,ro "$root/opt/rust"
    fi
    exec chroot "$root" /usr/bin/env -i HOME=/root PATH="$path" LANG=C.UTF-8 CI=true "$@"
  ' fresh-debian "$root" "$toolchain" "$workdir" "$path" \
    "${envs[@]}" /bin/bash -euo pipefail -c 'cd "$0" && eval "$*"' "$workdir" "$@"
  ;;
remove)
  [ -e "$root" ] || exit 0
  # A run's mounts live in its own namespace, so none is left here; refuse to follow one that is.
  if grep -q " $(realpath "$root")/" /proc/self/mounts; then
    say "something is still mounted under $root; not removing it"
    exit 1
  fi
  rm -rf --one-file-system "$root"
  ;;
*) usage ;;
esac
