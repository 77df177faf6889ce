//! Device discovery and the backends' refusals against a fake sysfs tree: ids, drivers, IOMMU
//! groups, UIO maps, and the messages that tell the admin what to run.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nicclock_uio::{open, DeviceSpec, Error, PciAddress, Sysfs};

struct FakeSysfs {
    root: PathBuf,
}

impl FakeSysfs {
    fn new(tag: &str) -> Self {
        let root = std::env::temp_dir().join(format!("nicclock-fakesys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("bus/pci/drivers")).unwrap();
        std::fs::create_dir_all(root.join("kernel/iommu_groups")).unwrap();
        std::fs::create_dir_all(root.join("class/uio")).unwrap();
        Self { root }
    }

    fn sysfs(&self) -> Sysfs {
        Sysfs::new(&self.root)
    }

    /// Adds a NIC: ids, BAR0 of `bar_size`, optional driver and IOMMU group.
    fn nic(&self, addr: &str, ids: [u16; 4], bar_size: u64, driver: Option<&str>, group: Option<u32>) {
        let dir = self.root.join("bus/pci/devices").join(addr);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, v) in ["vendor", "device", "subsystem_vendor", "subsystem_device"].iter().zip(ids) {
            std::fs::write(dir.join(name), format!("0x{v:04x}\n")).unwrap();
        }
        let end = 0xfebc_0000u64 + bar_size - 1;
        let resource = format!(
            "0x00000000febc0000 0x{end:016x} 0x0000000000040200\n0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
        );
        std::fs::write(dir.join("resource"), resource).unwrap();
        std::fs::write(dir.join("resource0"), vec![0u8; bar_size as usize]).unwrap();
        if let Some(d) = driver {
            let ddir = self.root.join("bus/pci/drivers").join(d);
            std::fs::create_dir_all(&ddir).unwrap();
            symlink(&ddir, dir.join("driver")).unwrap();
        }
        if let Some(g) = group {
            let gdir = self.root.join("kernel/iommu_groups").join(g.to_string());
            std::fs::create_dir_all(gdir.join("devices")).unwrap();
            symlink(&dir, gdir.join("devices").join(addr)).unwrap();
            symlink(&gdir, dir.join("iommu_group")).unwrap();
        }
    }

    fn uio(&self, name: &str, addr: &str, size: u64) {
        let dir = self.root.join("class/uio").join(name);
        std::fs::create_dir_all(dir.join("maps/map0")).unwrap();
        std::fs::write(dir.join("maps/map0/size"), format!("0x{size:016x}\n")).unwrap();
        std::fs::write(dir.join("maps/map0/addr"), "0x00000000febc0000\n").unwrap();
        symlink(self.root.join("bus/pci/devices").join(addr), dir.join("device")).unwrap();
    }
}

impl Drop for FakeSysfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

const E1000E_QEMU: [u16; 4] = [0x8086, 0x10d3, 0x1af4, 0x1100];
const IGB_QEMU: [u16; 4] = [0x8086, 0x10c9, 0x1af4, 0x1100];

fn addr(s: &str) -> PciAddress {
    s.parse().unwrap()
}

#[test]
fn a_device_is_described_from_sysfs() {
    let fake = FakeSysfs::new("describe");
    fake.nic("0000:00:02.0", E1000E_QEMU, 0x20000, Some("e1000e"), Some(3));
    let d = fake.sysfs().device(addr("0000:00:02.0")).unwrap();
    assert_eq!(
        (d.vendor, d.device, d.subsystem_vendor, d.subsystem_device),
        (0x8086, 0x10d3, 0x1af4, 0x1100)
    );
    assert_eq!(d.driver.as_deref(), Some("e1000e"));
    assert_eq!(d.iommu_group, Some(3));
    let bar = d.bar0.unwrap();
    assert_eq!((bar.start, bar.size), (0xfebc0000, 0x20000));
    assert!(bar.is_memory());

    fake.nic("0000:00:03.0", IGB_QEMU, 0x20000, None, Some(3));
    let members = fake.sysfs().iommu_group_members(3).unwrap();
    assert_eq!(members, vec![(addr("0000:00:02.0"), Some("e1000e".into())), (addr("0000:00:03.0"), None)]);
}

#[test]
fn an_absent_device_says_so() {
    let fake = FakeSysfs::new("absent");
    let e = fake.sysfs().device(addr("0000:00:09.0")).unwrap_err();
    assert!(matches!(e, Error::DeviceAbsent { .. }), "{e}");
    assert!(e.to_string().contains("no PCI device 0000:00:09.0") && e.to_string().contains("lspci -D"));
}

#[test]
fn sysfs_backend_refuses_a_kernel_driven_nic_with_the_rebind_command() {
    let fake = FakeSysfs::new("bound");
    fake.nic("0000:00:02.0", IGB_QEMU, 0x20000, Some("igb"), None);
    let spec: DeviceSpec = "sysfs:0000:00:02.0".parse().unwrap();
    let e = open(&fake.sysfs(), &spec, 0x10000).err().expect("refused");
    let msg = e.to_string();
    assert!(matches!(e, Error::BoundToDriver { .. }), "{msg}");
    assert!(msg.contains("kernel driver igb"), "{msg}");
    assert!(
        msg.contains("echo uio_pci_generic > /sys/bus/pci/devices/0000:00:02.0/driver_override"),
        "{msg}"
    );
    assert!(msg.contains("echo 0000:00:02.0 > /sys/bus/pci/drivers_probe"), "{msg}");
}

#[test]
fn sysfs_backend_maps_a_free_device_and_checks_the_bar_size() {
    let fake = FakeSysfs::new("free");
    fake.nic("0000:00:02.0", IGB_QEMU, 0x20000, None, None);
    let spec: DeviceSpec = "sysfs:0000:00:02.0".parse().unwrap();
    let dev = open(&fake.sysfs(), &spec, 0x10000).unwrap();
    use nicclock_uio::RegisterAccess;
    assert_eq!(dev.regs.len(), 0x20000);
    dev.regs.write32(0xB608, 0x0100_0010);
    assert_eq!(dev.regs.read32(0xB608), 0x0100_0010);
    assert_eq!(dev.pci.unwrap().device, 0x10c9);

    fake.nic("0000:00:04.0", IGB_QEMU, 0x1000, None, None);
    let spec: DeviceSpec = "sysfs:0000:00:04.0".parse().unwrap();
    let e = open(&fake.sysfs(), &spec, 0x10000).err().expect("too small");
    assert!(matches!(e, Error::BarTooSmall { size: 0x1000, needed: 0x10000, .. }), "{e}");
}

#[test]
fn uio_nodes_are_resolved_through_sysfs() {
    let fake = FakeSysfs::new("uio");
    fake.nic("0000:00:05.0", IGB_QEMU, 0x20000, Some("uio_pci_generic"), None);
    fake.uio("uio0", "0000:00:05.0", 0x20000);
    let (device, map_addr, size) = fake.sysfs().uio_map0("uio0").unwrap();
    assert_eq!((device, map_addr, size), (Some(addr("0000:00:05.0")), 0xfebc0000, 0x20000));
    let e = fake.sysfs().uio_map0("uio7").unwrap_err();
    assert!(e.to_string().contains("no UIO device uio7") && e.to_string().contains("uio_pci_generic"), "{e}");
}

#[test]
fn device_specs_parse_or_say_what_is_expected() {
    assert_eq!("vfio:0000:01:00.0".parse::<DeviceSpec>().unwrap(), DeviceSpec::Vfio(addr("0000:01:00.0")));
    assert_eq!("sysfs:01:00.0".parse::<DeviceSpec>().unwrap().to_string(), "sysfs:0000:01:00.0");
    assert_eq!(
        "uio:/dev/uio3".parse::<DeviceSpec>().unwrap(),
        DeviceSpec::Uio(Path::new("/dev/uio3").into())
    );
    for bad in ["0000:01:00.0", "pci:0000:01:00.0", "uio:/tmp/x", "vfio:01:00", "vfio:"] {
        let e = bad.parse::<DeviceSpec>().unwrap_err();
        assert!(e.is_usage(), "{bad}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(bad) || msg.contains("0000:01:00.0"), "{bad}: {msg}");
    }
}

#[test]
fn vfio_preconditions_each_say_what_to_do() {
    use nicclock_uio::vfio;
    let fake = FakeSysfs::new("vfio");
    let sysfs = fake.sysfs();
    fake.nic("0000:00:02.0", IGB_QEMU, 0x20000, Some("igb"), Some(4));
    let e = vfio::check(&sysfs, &sysfs.device(addr("0000:00:02.0")).unwrap()).unwrap_err().to_string();
    assert!(
        e.contains("kernel driver igb")
            && e.contains("echo vfio-pci > /sys/bus/pci/devices/0000:00:02.0/driver_override"),
        "{e}"
    );

    fake.nic("0000:00:03.0", IGB_QEMU, 0x20000, None, Some(5));
    let e = vfio::check(&sysfs, &sysfs.device(addr("0000:00:03.0")).unwrap()).unwrap_err().to_string();
    assert!(e.contains("not bound to vfio-pci") && e.contains("drivers_probe"), "{e}");

    fake.nic("0000:00:04.0", IGB_QEMU, 0x20000, Some("vfio-pci"), None);
    let e = vfio::check(&sysfs, &sysfs.device(addr("0000:00:04.0")).unwrap()).unwrap_err().to_string();
    assert!(e.contains("no IOMMU group") && e.contains("intel_iommu=on"), "{e}");

    // Group 6: our NIC on vfio-pci, a sibling still on e1000e, another with no driver.
    fake.nic("0000:00:05.0", IGB_QEMU, 0x20000, Some("vfio-pci"), Some(6));
    fake.nic("0000:00:05.1", E1000E_QEMU, 0x20000, Some("e1000e"), Some(6));
    fake.nic("0000:00:05.2", E1000E_QEMU, 0x20000, None, Some(6));
    let e = vfio::check(&sysfs, &sysfs.device(addr("0000:00:05.0")).unwrap()).unwrap_err();
    assert!(matches!(&e, Error::GroupNotViable { group: 6, others } if others.len() == 1), "{e}");
    assert!(e.to_string().contains("0000:00:05.1 (e1000e)"), "{e}");

    fake.nic("0000:00:06.0", IGB_QEMU, 0x20000, Some("vfio-pci"), Some(7));
    assert_eq!(vfio::check(&sysfs, &sysfs.device(addr("0000:00:06.0")).unwrap()).unwrap(), 7);
    let e = vfio::require_container(&fake.root.join("dev/vfio/vfio")).unwrap_err().to_string();
    assert!(e.contains("modprobe vfio-pci"), "{e}");
}

#[test]
fn a_uio_map_that_is_not_bar0_is_refused() {
    let fake = FakeSysfs::new("uio-notbar0");
    fake.nic("0000:00:05.0", IGB_QEMU, 0x20000, Some("uio_pci_generic"), None);
    fake.uio("uio1", "0000:00:05.0", 0x20000);
    std::fs::write(fake.root.join("class/uio/uio1/maps/map0/addr"), "0x00000000fe000000\n").unwrap();
    let spec: DeviceSpec = "uio:/dev/uio1".parse().unwrap();
    let e = open(&fake.sysfs(), &spec, 0x10000).err().expect("refused").to_string();
    assert!(e.contains("not BAR0") && e.contains("sysfs:"), "{e}");
}

#[test]
fn a_sysfs_device_offers_dma_that_sets_bus_mastering_through_its_config() {
    let fake = FakeSysfs::new("dma");
    fake.nic("0000:00:05.0", IGB_QEMU, 0x20000, None, None);
    let config = fake.root.join("bus/pci/devices/0000:00:05.0/config");
    let mut bytes = vec![0x86, 0x80, 0xc9, 0x10, 0x02, 0x00];
    bytes.resize(64, 0);
    std::fs::write(&config, bytes).unwrap();
    let command = || {
        let b = std::fs::read(&config).unwrap();
        u16::from_le_bytes([b[4], b[5]])
    };
    let spec: DeviceSpec = "sysfs:0000:00:05.0".parse().unwrap();
    let dev = open(&fake.sysfs(), &spec, 0x10000).unwrap();
    let dma = dev.dma.expect("a PCI device always has a DMA door");
    assert_eq!(command(), 0x0002, "opening the device leaves bus mastering off");
    // The door reads this process's real pagemap: frame numbers only with CAP_SYS_ADMIN.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let caps = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap();
    let sys_admin = u64::from_str_radix(caps.trim(), 16).unwrap() & (1 << 21) != 0;
    match dma.alloc(2048) {
        Ok(region) => {
            assert!(sys_admin, "frame numbers are shown only to CAP_SYS_ADMIN");
            assert_ne!(region.page_addresses()[0], 0);
            assert_eq!(command(), 0x0006);
            drop(region);
            assert_eq!(command(), 0x0002);
        }
        Err(e) => {
            assert!(!sys_admin, "{e}");
            assert!(e.to_string().contains("CAP_SYS_ADMIN"), "{e}");
            assert_eq!(command(), 0x0002);
        }
    }
}
