#!/usr/bin/env bash
# Installs and starts what evebox's tests need on a Debian machine (run by `npm test`).
# Idempotent, and quick when everything is already there. As root it installs the missing
# packages and starts dockerd; otherwise it says what is missing and fails.
set -euo pipefail

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
DOCKERD_LOG=/var/log/evebox-dockerd.log
APT_LOG=/var/log/evebox-provision-apt.log

# command:package — the command proves the package is usable.
NEEDS=(
  chromium:chromium
  docker:docker.io
  dockerd:docker.io
  docker-registry:docker-registry
  qemu-system-x86_64:qemu-system-x86
  qemu-system-aarch64:qemu-system-arm
  qemu-aarch64-static:qemu-user-static
  update-binfmts:binfmt-support
  qemu-img:qemu-utils
  nft:nftables
  dnsmasq:dnsmasq-base
  ip:iproute2
  conntrack:conntrack
  iptables-legacy-restore:iptables
  iperf3:iperf3
  socat:socat
  mkfs.vfat:dosfstools
  mcopy:mtools
  syslinux:syslinux
  cpio:cpio
  mmdebstrap:mmdebstrap
  mksquashfs:squashfs-tools
  sgdisk:gdisk
  grub-mkimage:grub-common
)
# Packages that bring files, not commands: syslinux's BIOS modules (test guest disk), OVMF (UEFI VMs), AAVMF (the
# arm64 image's UEFI, tests/image-arm64.test.ts).
FILE_PACKAGES=(syslinux-common ovmf qemu-efi-aarch64)

say() { echo "provision: $*"; }
is_root() { [ "$(id -u)" -eq 0 ]; }

missing=()
for need in "${NEEDS[@]}"; do
  command -v "${need%%:*}" >/dev/null 2>&1 || missing+=("${need#*:}")
done
# Test images copy /bin/busybox into a container: it must be the static build, not the `busybox` package's.
if ! dpkg-query -W -f='${db:Status-Abbrev}' busybox-static 2>/dev/null | grep -q '^ii'; then
  missing+=(busybox-static)
fi
for pkg in "${FILE_PACKAGES[@]}"; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii' || missing+=("$pkg")
done
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++')

did=0
if [ "${#missing[@]}" -gt 0 ]; then
  if ! is_root; then
    say "missing packages: ${missing[*]} (run as root: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  say "apt-get update"
  if ! apt-get update >"$APT_LOG" 2>&1; then
    tail -n 20 "$APT_LOG" >&2
    say "apt-get update failed (log: $APT_LOG)" >&2
    exit 1
  fi
  say "installing ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >>"$APT_LOG" 2>&1; then
    tail -n 20 "$APT_LOG" >&2
    say "apt-get install failed (log: $APT_LOG)" >&2
    exit 1
  fi
  say "installed ${missing[*]}"
  did=1
fi

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

if ! docker_answers; then
  if ! is_root; then
    say "dockerd is not answering on /var/run/docker.sock (start it as root, or run this script as root)" >&2
    exit 1
  fi
  # Debian's dockerd starts its own containerd when none is running, so containerd is not started here.
  setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  pid=$!
  started=$SECONDS
  until docker_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$DOCKERD_LOG" >&2
      say "dockerd exited during start-up (log: $DOCKERD_LOG)" >&2
      exit 1
    fi
    if [ $((SECONDS - started)) -ge 60 ]; then
      tail -n 20 "$DOCKERD_LOG" >&2
      say "dockerd did not answer within 60 s (log: $DOCKERD_LOG)" >&2
      exit 1
    fi
    sleep 0.5
  done
  say "started dockerd (pid $pid, answering after $((SECONDS - started)) s, log $DOCKERD_LOG)"
  did=1
fi

# The arm64 image's Debian layer runs its package scripts through qemu-user-static (tests/image-arm64.test.ts):
# binfmt_misc mounted and the qemu-aarch64 interpreter registered. Where the machine refuses (a container without
# the right), say so: that one test is then skipped with the reason.
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/qemu-aarch64" ] && is_root; then
  [ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || true
  if [ -e "$BINFMT/register" ]; then update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true; fi
  if [ -e "$BINFMT/qemu-aarch64" ]; then
    say "registered qemu-aarch64 in binfmt_misc (for the arm64 image)"
    did=1
  else
    say "cannot register qemu-aarch64 in binfmt_misc here: tests/image-arm64 will be skipped" >&2
  fi
fi

[ "$did" -eq 1 ] || say "nothing to do: packages present, dockerd answering"
