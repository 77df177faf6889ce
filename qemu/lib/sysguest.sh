# The systemd guest: a small Debian bookworm with systemd, udev and chrony, nicclock installed from
# its Debian package (packaging/deb/build.sh) with dpkg, booted like the lab VM (q35 + intel-iommu under TCG, the same Debian kernel), to
# exercise the udev rule and nicclockd@.service on a hot-plugged NIC (qemu/sysguest/scenarios/).
#
# Image. `debootstrap --variant=minbase` from the machine's own mirror (the URI in the apt sources,
# as vm_apt reads it) makes the base, trimmed of apt lists/archives, docs, man pages and locales
# (~120 MB), cached in $cache/sysguest/base-<key> and rebuilt only when missing (the key is the
# package list). The image on top of it (the .deb built from our binaries of `qemu/vm build`,
# installed by `dpkg -i` in the chroot, the users, the lab unit, the masks, the kernel modules) is
# assembled again only when one of its inputs changed (a checksum of all of them names it).
# Kernel modules: not the whole 396 MB /lib/modules/<kver> of the cached kernel, but the modules the
# lab needs (vfio-pci, vfio_iommu_type1, igb, e1000e, uio_pci_generic) with their dependencies
# resolved by modprobe --show-depends, then depmod: udev's coldplug then loads only these (e1000e
# for the NIC that is not opted in) instead of every driver the machine matches, which under TCG
# costs seconds each.
#
# Boot. The whole rootfs as the initramfs, PID 1 systemd (rdinit=/sbin/init), an uncompressed cpio.
# Measured against the alternative, a raw ext4 image (mkfs.ext4 -d, no loop mount) on virtio-blk
# behind a busybox initramfs that loads virtio_pci/virtio_blk/crc32c_generic/ext4 (all =m in
# Debian's config) and switch_roots: on the 2-core machine under TCG the scenario's NICCLOCK-BOOT
# line came at 13.7-18.3 s of uptime over 7 initramfs boots and 13.5-17.4 s over 2 disk boots, a
# whole passing run 53-66 s either way. Equal, so the initramfs: one artefact, no disk modules, no
# pre-init stage and no mount to go wrong. The guest writes nothing back.
#
# Console. systemd.show_status=false, `quiet loglevel=3`, no getty on tty1, and in scenario mode no
# getty on ttyS0 (systemd.mask= on the kernel command line): the serial console carries the
# kernel's errors and the scenario's lines only. Units that would only cost boot time under TCG or
# cannot work here (logind without D-Bus, apt/dpkg/e2scrub/fstrim timers, first-boot update units,
# chrony: it has no use in this scenario and no network to reach) are masked in the image.

vm_sys_suite=bookworm
# adduser: the package's Depends (its postinst makes the nicclock user); man-db: `man nicclockd`.
vm_sys_packages=systemd,systemd-sysv,udev,kmod,procps,chrony,adduser,man-db
vm_sys_modules=(vfio-pci vfio_iommu_type1 igb e1000e uio_pci_generic)
vm_sys_masked=(getty@tty1.service systemd-logind.service apt-daily.timer apt-daily-upgrade.timer
  dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-hwdb-update.service
  ldconfig.service systemd-journal-catalog-update.service systemd-update-done.service
  systemd-firstboot.service systemd-pstore.service chrony.service systemd-timesyncd.service
  console-getty.service)

# The debootstrapped base, cached; prints its directory.
vm_sys_base() {
  local key base mirror
  key=$(printf '%s %s minbase trim1' "$vm_sys_suite" "$vm_sys_packages" | sha256sum | cut -c1-12)
  base="$cache/sysguest/base-$key"
  if [ -e "$base/.nicclock-base" ]; then echo "$base"; return 0; fi
  command -v debootstrap > /dev/null || { echo "sysbuild: debootstrap missing: run 'qemu/vm setup' (as root)" >&2; return 1; }
  [ "$(id -u)" = 0 ] || { echo "sysbuild: debootstrap needs root" >&2; return 1; }
  mirror=$(vm_mirror) || return 1
  rm -rf "$base.tmp"
  mkdir -p "$cache/sysguest"
  echo "sysbuild: debootstrap $vm_sys_suite (minbase + $vm_sys_packages) from the configured mirror" >&2
  local t0=$SECONDS
  if ! debootstrap --variant=minbase --include="$vm_sys_packages" "$vm_sys_suite" "$base.tmp" "$mirror" \
    > "$cache/sysguest/debootstrap.log" 2>&1; then
    tail -20 "$cache/sysguest/debootstrap.log" >&2
    echo "sysbuild: debootstrap failed (log $cache/sysguest/debootstrap.log)" >&2
    return 1
  fi
  rm -rf "$base.tmp"/var/cache/apt/* "$base.tmp"/var/lib/apt/lists/* "$base.tmp"/usr/share/doc/* \
    "$base.tmp"/usr/share/man "$base.tmp"/usr/share/info "$base.tmp"/usr/share/locale/* \
    "$base.tmp"/usr/lib/udev/hwdb.bin "$base.tmp"/var/log/*.log
  touch "$base.tmp/.nicclock-base"
  find "$cache/sysguest" -maxdepth 1 -name 'base-*' ! -name '*.tmp' -exec rm -rf {} + # other package lists
  mv "$base.tmp" "$base"
  echo "sysbuild: base $(du -sh "$base" | cut -f1) in $((SECONDS - t0))s" >&2
  echo "$base"
}

# Copies module NAME... of the cached kernel, with their dependencies, into rootfs $1.
vm_sys_copy_modules() {
  local r=$1 kver m line f
  shift
  kver=$(cat "$cache/kver")
  for m in "$@"; do
    modprobe -d "$cache/kroot" -S "$kver" --show-depends "$m" > "$cache/sysguest/deps.txt" \
      || { echo "sysbuild: module $m missing from the guest kernel" >&2; return 1; }
    while read -r line; do
      case $line in
        insmod\ *)
          f=${line#insmod }
          f=${f%% *}
          f=${f#"$cache"/kroot/}
          mkdir -p "$r/$(dirname "$f")"
          cp "$cache/kroot/$f" "$r/$f"
          ;;
      esac
    done < "$cache/sysguest/deps.txt"
  done
  cp "$cache"/kroot/lib/modules/"$kver"/modules.{order,builtin,builtin.modinfo} "$r/lib/modules/$kver/"
  depmod -b "$r" "$kver"
}

# The static nicclockd/nicclock `qemu/vm build` makes (NICCLOCK_SYS_BINDIR: another build's).
vm_sys_rel() { echo "${NICCLOCK_SYS_BINDIR:-$root/target/x86_64-unknown-linux-gnu/release}"; }

# The image's inputs, hashed: rebuild when any changes.
vm_sys_key() {
  local rel
  rel=$(vm_sys_rel)
  {
    echo "$1"
    cat "$cache/kver"
    sha256sum "$rel/nicclockd" "$rel/nicclock" "$root/target/release/libnicclock.so" "$root"/udev/* \
      "$root/userspace/include/nicclock.h" "$here/guest/lib.sh" "$here/lib/sysguest.sh" "$root"/packaging/deb/*
    find "$here/sysguest" -type f -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}

vm_sys_build() {
  [ -s "$cache/kver" ] || { echo "sysbuild: run 'qemu/vm setup' first" >&2; return 1; }
  local rel kver
  rel=$(vm_sys_rel)
  kver=$(cat "$cache/kver")
  [ -x "$rel/nicclockd" ] && [ -x "$rel/nicclock" ] || { echo "sysbuild: run 'qemu/vm build' first (no $rel/nicclockd)" >&2; return 1; }
  if [ ! -e "$root/target/release/libnicclock.so" ]; then
    # The package holds the C library too; the static lab build has no cdylib.
    echo "sysbuild: cargo build --release -p nicclock --lib (libnicclock.so for the package)"
    (cd "$root" && cargo build --release -q -p nicclock --lib) || return 1
  fi
  local base
  base=$(vm_sys_base) || return 1
  local key out="$cache/sysguest"
  key=$(vm_sys_key "$base")
  local img="$out/image-$key.cpio"
  if [ -s "$img" ]; then
    echo "sysbuild: cached image $img"
    ln -sfn "$(basename "$img")" "$out/current.cpio"
    return 0
  fi
  local t0=$SECONDS
  local r="$out/stage"
  rm -rf "$r"
  cp -a "$base" "$r"
  rm -f "$r/.nicclock-base"

  # nicclock, installed the way a Debian administrator does it: its .deb (the lab's static binaries,
  # target/release's libnicclock.so) by dpkg -i in the guest's root; its postinst creates the
  # nicclock system user the unit's --user/--group needs.
  local deb
  deb=$(NICCLOCK_DEB_BINDIR=$rel NICCLOCK_DEB_LIBDIR=$root/target/release sh "$root/packaging/deb/build.sh" --no-build) \
    || { echo "sysbuild: packaging/deb/build.sh failed" >&2; return 1; }
  cp "$deb" "$r/tmp/nicclock.deb"
  chroot "$r" dpkg -i /tmp/nicclock.deb > "$out/install.log" 2>&1 \
    || { cat "$out/install.log" >&2; echo "sysbuild: dpkg -i $(basename "$deb") failed in the guest root" >&2; return 1; }
  rm -f "$r/tmp/nicclock.deb"
  chroot "$r" dpkg -s nicclock > /dev/null || { echo "sysbuild: dpkg does not list nicclock as installed" >&2; return 1; }
  chroot "$r" getent passwd nicclock > /dev/null || { echo "sysbuild: the package's postinst made no nicclock user" >&2; return 1; }
  # The reader: an ordinary user.
  chroot "$r" useradd --uid 1000 --user-group --create-home --shell /bin/sh reader
  # Opt in only the address the hot-plugged igb gets (behind rp1, the only bridge: bus 01).
  printf '0000:01:00.0 vfio\n' >> "$r/etc/nicclock/devices"

  # The lab: helpers, scenarios, the runner and its unit.
  local lab="$r/usr/local/lib/nicclock-lab"
  mkdir -p "$lab/scenarios"
  cp "$here/guest/lib.sh" "$lab/lib.sh"
  cp "$here"/sysguest/scenarios/*.sh "$lab/scenarios/"
  install -m 755 "$here/sysguest/run" "$lab/run"
  cp "$here/sysguest/nicclock-lab.service" "$r/etc/systemd/system/"
  mkdir -p "$r/etc/systemd/system/serial-getty@ttyS0.service.d"
  cp "$here/sysguest/autologin.conf" "$r/etc/systemd/system/serial-getty@ttyS0.service.d/"
  { chroot "$r" systemctl disable chrony.service && chroot "$r" systemctl enable nicclock-lab.service &&
    chroot "$r" systemctl mask "${vm_sys_masked[@]}"; } > "$out/systemctl.log" 2>&1 \
    || { cat "$out/systemctl.log" >&2; echo "sysbuild: systemctl enable/mask failed in the guest root" >&2; return 1; }
  [ -L "$r/etc/systemd/system/multi-user.target.wants/nicclock-lab.service" ] \
    || { echo "sysbuild: could not enable nicclock-lab.service" >&2; return 1; }
  chroot "$r" passwd -dq root
  echo nicclock-sys > "$r/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 nicclock-sys\n' > "$r/etc/hosts"
  vm_sys_copy_modules "$r" "${vm_sys_modules[@]}" || return 1
  [ -e "$r/dev/console" ] || mknod -m 600 "$r/dev/console" c 5 1

  rm -f "$out"/image-*.cpio
  (cd "$r" && find . | cpio -o -H newc --quiet) > "$img.tmp"
  mv "$img.tmp" "$img"
  ln -sfn "$(basename "$img")" "$out/current.cpio"
  rm -rf "$r"
  echo "sysbuild: image $(du -h "$img" | cut -f1) (kernel $kver) in $((SECONDS - t0))s: $img"
}

# The systemd guest's QEMU: the lab's machine with the e1000e alone on the root bus and an EMPTY
# hot-plug root port rp1; netdev n2 waits for the igb the scenario plugs in.
vm_sys_qemu() { # append-extra, then extra qemu args
  local extra=$1 img="$cache/sysguest/current.cpio"
  shift
  [ -s "$img" ] || { echo "vm: run 'qemu/vm sysbuild' first (no $img)" >&2; return 1; }
  vm_machine "rdinit=/sbin/init systemd.show_status=false $extra" "$img" \
    -netdev hubport,id=n0,hubid=0 -netdev hubport,id=n2,hubid=0 \
    -device e1000e,romfile=,netdev=n0,mac=52:54:00:00:00:01,id=nic0 \
    "$@"
}

vm_sys_scenarios() { for f in "$here"/sysguest/scenarios/*.sh; do basename "$f" .sh; done; }

# Runs systemd-guest scenario $1 through boot.sh's vm_run_scenario (its console pipeline, QMP
# relay and verdict parsing), booted by vm_sys_qemu.
vm_sys_run_scenario() {
  vm_sys_build > /dev/null || { echo "vm: the systemd guest image cannot be built" >&2; return 1; }
  NICCLOCK_VM_APPEND="systemd.mask=serial-getty@ttyS0.service ${NICCLOCK_VM_APPEND:-}" vm_run_scenario "$1" vm_sys_qemu
}

# A root shell in the systemd guest (the serial getty logs root in; Ctrl-a x quits).
vm_sys_shell() {
  vm_sys_build > /dev/null || return 1
  vm_sys_qemu ""
}
