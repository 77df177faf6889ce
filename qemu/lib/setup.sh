# Host set-up for the QEMU lab: packages (without touching the host's apt configuration beyond
# installing), QEMU from bookworm-backports when the host's is too old for igb, and the guest
# kernel and linuxptp fetched with `apt-get download` into the cache.

# The Debian mirror the machine's apt sources already use (never a host name of our own).
vm_mirror() {
  local m
  m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$m" ] || { echo "setup: no Debian mirror in the apt sources" >&2; return 1; }
  echo "$m"
}

vm_apt() {
  # A private apt configuration: the machine's own sources plus bookworm-backports on the same mirror.
  local a="$cache/apt"
  mkdir -p "$a/lists/partial" "$a/sources"
  cp /etc/apt/sources.list.d/*.sources "$a/sources/" 2>/dev/null || true
  local mirror
  mirror=$(vm_mirror) || return 1
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" > "$a/sources/nicclock-backports.sources"
  local sl=/dev/null
  [ -s /etc/apt/sources.list ] && sl=/etc/apt/sources.list
  apt-get -o Dir::Etc::SourceList="$sl" -o Dir::Etc::SourceParts="$a/sources" -o Dir::State::Lists="$a/lists" "$@"
}

vm_has_qemu() {
  command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'
}

vm_setup() {
  export DEBIAN_FRONTEND=noninteractive
  local need=()
  command -v busybox >/dev/null && busybox --list | grep -qx setpriv || need+=(busybox-static)
  command -v cpio >/dev/null || need+=(cpio)
  command -v depmod >/dev/null || need+=(kmod)
  command -v cc >/dev/null || need+=(gcc libc6-dev)
  command -v debootstrap >/dev/null || need+=(debootstrap) # the systemd guest (qemu/lib/sysguest.sh)
  command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
  if [ ${#need[@]} -gt 0 ] || ! vm_has_qemu; then
    [ "$(id -u)" = 0 ] || { echo "setup: run as root to install ${need[*]} qemu-system-x86" >&2; return 1; }
    apt-get update -qq
  fi
  [ ${#need[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if ! vm_has_qemu; then
    echo "setup: installing qemu-system-x86 from bookworm-backports (the igb model needs QEMU >= 8.1)"
    vm_apt update -qq
    vm_apt install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
  fi
  vm_has_qemu || { echo "setup: qemu-system-x86_64 has no igb device" >&2; return 1; }
  echo "setup: $(qemu-system-x86_64 --version | head -1)"

  local dl="$cache/dl"
  mkdir -p "$dl"
  if [ ! -s "$cache/kver" ]; then
    local kpkg
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6/{print $2; exit}')
    [ -n "$kpkg" ] || { apt-get update -qq; kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6/{print $2; exit}'); }
    (cd "$dl" && rm -f ./*.deb && apt-get download -qq "$kpkg" linuxptp 2>/dev/null)
    rm -rf "$cache/kroot" "$cache/ptproot"
    mkdir -p "$cache/kroot" "$cache/ptproot"
    dpkg-deb -x "$dl"/linux-image-*.deb "$cache/kroot"
    dpkg-deb -x "$dl"/linuxptp_*.deb "$cache/ptproot"
    local kver
    kver=$(ls "$cache/kroot/lib/modules")
    depmod -b "$cache/kroot" "$kver"
    echo "$kver" > "$cache/kver"
  fi
  echo "setup: guest kernel $(cat "$cache/kver"), cache $cache"
}
