# Guest image: static nicclockd, nicclock, the C camera example and wake-floor, busybox, the kernel
# modules the scenarios load, linuxptp with its libraries, the scenarios, and an unprivileged user (uid 1000).

vm_modules=(uio uio_pci_generic e1000e igb i2c-algo-bit dca ptp pps_core irqbypass vfio vfio_iommu_type1 vfio_virqfd vfio-pci-core vfio-pci)

vm_build() {
  [ -s "$cache/kver" ] || { echo "build: run 'qemu/vm setup' first" >&2; return 1; }
  local kver target=x86_64-unknown-linux-gnu
  kver=$(cat "$cache/kver")
  echo "build: static binaries"
  if ! (cd "$root" && RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release -q --target "$target" -p nicclock -p nicclock-driver --lib --bins) 2> "$cache/cargo.log"; then
    cat "$cache/cargo.log" >&2
    echo "build: the static build failed" >&2
    return 1
  fi
  local rel="$root/target/$target/release"
  cc -O2 -static -std=c11 -D_GNU_SOURCE -I "$root/userspace/include" "$root/userspace/examples/camera.c" \
    "$rel/libnicclock.a" -lpthread -ldl -lm -o "$cache/camera" 2> "$cache/camera-link.log" \
    || { cat "$cache/camera-link.log" >&2; return 1; }
  cc -O2 -static -std=c11 -D_GNU_SOURCE "$here/guest/wake_floor.c" -o "$cache/wake-floor" 2> "$cache/wake-floor.log" \
    || { cat "$cache/wake-floor.log" >&2; return 1; }

  echo "build: initramfs"
  local r="$cache/rootfs"
  rm -rf "$r"
  mkdir -p "$r"/{bin,sbin,usr/sbin,proc,sys,dev,tmp,run,etc,root,scenarios,lib/modules/"$kver",lib/x86_64-linux-gnu,lib64}
  local bb
  bb=$(command -v busybox)
  if ldd "$bb" >/dev/null 2>&1; then echo "build: $bb is not static (install busybox-static)" >&2; return 1; fi
  cp "$bb" "$r/bin/busybox"
  cp "$here/guest/init" "$r/init"
  chmod 755 "$r/init"
  cp "$here/guest/lib.sh" "$r/lib/nicclock-guest.sh"
  cp "$here"/guest/scenarios/*.sh "$r/scenarios/"
  cp "$rel/nicclockd" "$rel/nicclock" "$cache/camera" "$cache/wake-floor" "$r/bin/"
  local m f rel_path
  for m in "${vm_modules[@]}"; do
    f=$(find "$cache/kroot/lib/modules/$kver/kernel" -name "$m.ko*" | head -1)
    if [ -z "$f" ]; then
      grep -q "/$m.ko" "$cache/kroot/lib/modules/$kver/modules.builtin" && continue # built in
      echo "build: module $m missing from the guest kernel" >&2
      return 1
    fi
    rel_path=${f#"$cache"/kroot/lib/modules/"$kver"/}
    mkdir -p "$r/lib/modules/$kver/$(dirname "$rel_path")"
    cp "$f" "$r/lib/modules/$kver/$rel_path"
  done
  cp "$cache"/kroot/lib/modules/"$kver"/modules.{order,builtin,builtin.modinfo} "$r/lib/modules/$kver/"
  depmod -b "$r" "$kver"
  # linuxptp is dynamically linked: bring its libraries (host and guest are the same Debian release).
  local b
  for b in phc2sys ptp4l phc_ctl; do cp "$cache/ptproot/usr/sbin/$b" "$r/usr/sbin/"; done
  ldd "$cache/ptproot/usr/sbin/ptp4l" "$cache/ptproot/usr/sbin/phc2sys" | awk '/=> \//{print $3}' | sort -u |
    xargs -I{} cp -L {} "$r/lib/x86_64-linux-gnu/"
  cp -L /lib64/ld-linux-x86-64.so.2 "$r/lib64/"
  printf 'root:x:0:0:root:/root:/bin/sh\nreader:x:1000:1000:reader:/tmp:/bin/sh\n' > "$r/etc/passwd"
  printf 'root:x:0:\nreader:x:1000:\n' > "$r/etc/group"
  (cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) > "$cache/initramfs.cpio.gz"
  echo "build: $(du -h "$cache/initramfs.cpio.gz" | cut -f1) initramfs for kernel $kver"
}
