#!/bin/sh
# packaging/deb/check.sh: builds the .deb, runs lintian (no errors allowed), installs it with dpkg,
# checks the user, a man page and the library, purges it and checks that nothing is left; then that
# udev/install.sh installs the same files. Root.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
deb=$(sh "$root/packaging/deb/build.sh" "$@")
lintian --fail-on error "$deb"
if dpkg -s nicclock >/dev/null 2>&1; then
  echo "deb check: a nicclock package is already installed here; not touching it" >&2
  exit 1
fi
files=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$')
dpkg -i "$deb" >/dev/null
fail() { echo "deb check: $*" >&2; dpkg --purge nicclock >/dev/null 2>&1 || true; exit 1; }
getent passwd nicclock >/dev/null || fail "postinst created no nicclock user"
man -w nicclockd >/dev/null 2>&1 || [ -e /usr/share/man/man8/nicclockd.8.gz ] || fail "no man page nicclockd(8)"
nicclock --version >/dev/null || fail "nicclock does not run"
ldconfig -p | grep -q 'libnicclock.so ' || fail "libnicclock.so is not in the linker cache"
dpkg --purge nicclock >/dev/null 2>&1
getent passwd nicclock >/dev/null && { echo "deb check: purge left the nicclock user" >&2; exit 1; }
getent group nicclock >/dev/null && { echo "deb check: purge left the nicclock group" >&2; exit 1; }
for f in $files /etc/nicclock; do
  [ ! -e "$f" ] || { echo "deb check: purge left $f" >&2; exit 1; }
done

# udev/install.sh, for other systems (/usr/local), installs the same files as the package (by name:
# their directories differ), and every program its units and rules name is among them.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/root
sh "$root/udev/install.sh" "$dest" >/dev/null
names() { sed 's|.*/||; s|\.gz$||' | sort; }
want=$(printf '%s\n' $files | grep -v '^/usr/share/doc/' | names)
got=$(cd "$dest" && find . -type f | names)
[ "$want" = "$got" ] || { echo "deb check: udev/install.sh and the package install different files:" >&2
  echo "$got" > "$tmp/install.sh.files"; echo "$want" | diff - "$tmp/install.sh.files" >&2 || true; exit 1; }
for unit in "$dest"/etc/systemd/system/* "$dest"/etc/udev/rules.d/*; do
  for p in $(grep -o '/usr/local/[a-z/_-]*' "$unit"); do
    [ -e "$dest$p" ] || { echo "deb check: ${unit#"$dest"} names $p, which install.sh does not install" >&2; exit 1; }
  done
done
echo "deb check: $deb: lintian without errors, installs, purges clean; udev/install.sh installs the same $(echo "$got" | wc -l) files"
