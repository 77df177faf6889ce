#!/bin/sh
# packaging/deb/build.sh [--no-build]: builds target/debian/nicclock_VERSION_ARCH.deb from the
# workspace with dpkg-deb (no debhelper, no cargo-deb: see README "Debian package"). The package
# holds nicclockd, nicclock, libnicclock.so with its header and pkg-config file, the systemd units,
# the udev rules and helpers, man pages and completions; its maintainer scripts (beside this file)
# create the `nicclock` system user and reload systemd and udev; purge removes the user and /etc/nicclock.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/packaging/deb
# NICCLOCK_DEB_BINDIR: take nicclockd and nicclock from there (with --no-build), e.g. the lab's
# static target/x86_64-unknown-linux-gnu/release; NICCLOCK_DEB_LIBDIR: libnicclock.so from there
# (default the same directory; the lab's static build makes no cdylib: target/release has it).
rel=${NICCLOCK_DEB_BINDIR:-$root/target/release}
lib=${NICCLOCK_DEB_LIBDIR:-$rel}
[ "${1:-}" = --no-build ] || (cd "$root" && cargo build --release -q -p nicclock -p nicclock-driver --lib --bins)
for f in "$rel/nicclockd" "$rel/nicclock" "$lib/libnicclock.so"; do
  [ -e "$f" ] || { echo "build-deb: $f missing: run cargo build --release first" >&2; exit 1; }
done
# Maintainer: Debian's DEBFULLNAME/DEBEMAIL, else the author of the commit built.
maintainer="${DEBFULLNAME:-$(git -C "$root" log -1 --format=%an)} <${DEBEMAIL:-$(git -C "$root" log -1 --format=%ae)}>"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/userspace/Cargo.toml" | head -n 1)
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
out=$root/target/debian
stage=$out/nicclock_${version}_$arch
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"

# Paths: the units and rules name /usr/local (udev/install.sh's layout); the package's are /usr.
usr() { sed -e 's|/usr/local/sbin/|/usr/sbin/|g; s|/usr/local/bin/|/usr/bin/|g; s|/usr/local/lib/nicclock/|/usr/lib/nicclock/|g' "$1"; }
put() { # put MODE SRC DEST: install, with /usr/local paths rewritten for text files
  mkdir -p "$(dirname "$stage/$3")"
  case $2 in
    *.service | *.rules) usr "$2" > "$stage/$3" ;;
    *) cp "$2" "$stage/$3" ;;
  esac
  chmod "$1" "$stage/$3"
}
put 755 "$rel/nicclockd" usr/sbin/nicclockd
put 755 "$rel/nicclock" usr/bin/nicclock
put 644 "$lib/libnicclock.so" "usr/lib/$multiarch/libnicclock.so"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
  "$stage/usr/sbin/nicclockd" "$stage/usr/bin/nicclock" "$stage/usr/lib/$multiarch/libnicclock.so"
put 644 "$root/userspace/include/nicclock.h" usr/include/nicclock.h
mkdir -p "$stage/usr/lib/$multiarch/pkgconfig"
sed -e "s|@PREFIX@|/usr|; s|@LIBDIR@|\${prefix}/lib/$multiarch|; s|@VERSION@|$version|" \
  "$root/udev/nicclock.pc.in" > "$stage/usr/lib/$multiarch/pkgconfig/nicclock.pc"
chmod 644 "$stage/usr/lib/$multiarch/pkgconfig/nicclock.pc"
put 755 "$root/udev/nicclock-optin" usr/lib/nicclock/nicclock-optin
put 755 "$root/udev/nicclock-bind" usr/lib/nicclock/nicclock-bind
put 644 "$root/udev/70-nicclock.rules" lib/udev/rules.d/70-nicclock.rules
put 644 "$root/udev/nicclockd@.service" lib/systemd/system/nicclockd@.service
put 644 "$root/udev/nicclock-metrics.service" lib/systemd/system/nicclock-metrics.service
mkdir -p "$stage/etc/nicclock"
printf '# <pci address> vfio|uio, one per line: the NICs nicclock may take\n' > "$stage/etc/nicclock/devices"
chmod 644 "$stage/etc/nicclock/devices"

docs=$(mktemp -d)
trap 'rm -rf "$docs"' EXIT
NICCLOCK_GENERATE_DOCS=$docs "$rel/nicclockd" > /dev/null
NICCLOCK_GENERATE_DOCS=$docs "$rel/nicclock" > /dev/null
for page in "$docs"/man/*; do
  section=${page##*.}
  put 644 "$page" "usr/share/man/man$section/${page##*/}"
  gzip -9n "$stage/usr/share/man/man$section/${page##*/}"
done
for cmd in nicclockd nicclock; do
  put 644 "$docs/completions/$cmd.bash" "usr/share/bash-completion/completions/$cmd"
  put 644 "$docs/completions/_$cmd" "usr/share/zsh/vendor-completions/_$cmd"
  put 644 "$docs/completions/$cmd.fish" "usr/share/fish/vendor_completions.d/$cmd.fish"
done
put 644 "$here/copyright" usr/share/doc/nicclock/copyright
date=$(git -C "$root" log -1 --format=%aD 2>/dev/null || date -R)
printf 'nicclock (%s) unstable; urgency=medium\n\n  * Built from the nicclock workspace.\n\n -- %s  %s\n' \
  "$version" "$maintainer" "$date" | gzip -9n > "$stage/usr/share/doc/nicclock/changelog.gz"
chmod 644 "$stage/usr/share/doc/nicclock/changelog.gz"

for s in postinst prerm postrm; do put 755 "$here/$s" "DEBIAN/$s"; done
put 644 "$here/triggers" DEBIAN/triggers
echo /etc/nicclock/devices > "$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|; s|@ARCH@|$arch|; s|@SIZE@|$size|; s|@MAINTAINER@|$maintainer|" "$here/control.in" > "$stage/DEBIAN/control"
find "$stage" -type d -exec chmod 755 {} +
deb=$out/nicclock_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
