#!/bin/sh
# Installs nicclockd, nicclock, the C library, header and pkg-config file, the systemd units, the
# udev rules, the man pages and shell completions (on Debian, prefer the .deb: packaging/deb/build.sh).
# usage: udev/install.sh [DESTDIR]   (run from a checkout, after `cargo build --release`)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-}
rel=$root/target/release
for f in nicclockd nicclock libnicclock.so; do
  [ -e "$rel/$f" ] || { echo "install: $rel/$f missing: run cargo build --release first" >&2; exit 1; }
done
install -D -m 755 "$rel/nicclockd" "$dest/usr/local/sbin/nicclockd"
install -D -m 755 "$rel/nicclock" "$dest/usr/local/bin/nicclock"
install -D -m 644 "$rel/libnicclock.so" "$dest/usr/local/lib/libnicclock.so"
install -D -m 644 "$root/userspace/include/nicclock.h" "$dest/usr/local/include/nicclock.h"
install -D -m 755 "$root/udev/nicclock-optin" "$dest/usr/local/lib/nicclock/nicclock-optin"
install -D -m 755 "$root/udev/nicclock-bind" "$dest/usr/local/lib/nicclock/nicclock-bind"
install -D -m 644 "$root/udev/70-nicclock.rules" "$dest/etc/udev/rules.d/70-nicclock.rules"
install -D -m 644 "$root/udev/nicclockd@.service" "$dest/etc/systemd/system/nicclockd@.service"
install -D -m 644 "$root/udev/nicclock-metrics.service" "$dest/etc/systemd/system/nicclock-metrics.service"
version=$("$rel/nicclock" --version | cut -d' ' -f2)
mkdir -p "$dest/usr/local/lib/pkgconfig"
sed -e "s|@PREFIX@|/usr/local|; s|@LIBDIR@|/usr/local/lib|; s|@VERSION@|$version|" "$root/udev/nicclock.pc.in" \
  > "$dest/usr/local/lib/pkgconfig/nicclock.pc"
# Man pages and completions: the binaries write them from their own clap definitions.
docs=$(mktemp -d)
trap 'rm -rf "$docs"' EXIT
NICCLOCK_GENERATE_DOCS=$docs "$rel/nicclockd" > /dev/null
NICCLOCK_GENERATE_DOCS=$docs "$rel/nicclock" > /dev/null
for page in "$docs"/man/*; do
  section=${page##*.}
  install -D -m 644 "$page" "$dest/usr/local/share/man/man$section/${page##*/}"
done
for cmd in nicclockd nicclock; do
  install -D -m 644 "$docs/completions/$cmd.bash" "$dest/usr/local/share/bash-completion/completions/$cmd"
  install -D -m 644 "$docs/completions/_$cmd" "$dest/usr/local/share/zsh/site-functions/_$cmd"
  install -D -m 644 "$docs/completions/$cmd.fish" "$dest/usr/local/share/fish/vendor_completions.d/$cmd.fish"
done
mkdir -p "$dest/etc/nicclock"
[ -e "$dest/etc/nicclock/devices" ] || printf '# <pci address> vfio|uio, one per line: the NICs nicclock may take\n' > "$dest/etc/nicclock/devices"
if [ -z "$dest" ]; then
  getent group nicclock >/dev/null || groupadd --system nicclock
  getent passwd nicclock >/dev/null || useradd --system --gid nicclock --no-create-home --shell /usr/sbin/nologin nicclock
  ldconfig
  systemctl daemon-reload 2>/dev/null || true
  udevadm control --reload 2>/dev/null || true
fi
echo "installed under ${dest:-/}"
