//! PCI devices as sysfs describes them: address syntax, ids, bound driver, IOMMU group, BAR0.
//! The sysfs root is a parameter, so tests run against a fake tree.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::Error;

/// A PCI address, `DDDD:BB:DD.F` (domain, bus, device, function).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    pub domain: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl FromStr for PciAddress {
    type Err = Error;

    /// Accepts `0000:01:00.0` or the short `01:00.0` (domain 0).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &'static str| Error::InvalidAddress { input: s.to_string(), reason };
        let (rest, function) = s.rsplit_once('.').ok_or_else(|| bad("no '.' before the function number"))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, dev] => (*d, *b, *dev),
            [b, dev] => ("0000", *b, *dev),
            _ => return Err(bad("expected DDDD:BB:DD.F")),
        };
        let hex = |t: &str, max_len: usize, what: &'static str| {
            if t.is_empty() || t.len() > max_len || !t.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad(what));
            }
            u32::from_str_radix(t, 16).map_err(|_| bad(what))
        };
        let domain = hex(domain, 4, "the domain is up to 4 hex digits")? as u16;
        let bus = hex(bus, 2, "the bus is up to 2 hex digits")? as u8;
        let device = hex(device, 2, "the device is up to 2 hex digits")?;
        if device > 0x1f {
            return Err(bad("the device number is at most 1f"));
        }
        let function = hex(function, 1, "the function is one digit 0-7")?;
        if function > 7 {
            return Err(bad("the function is one digit 0-7"));
        }
        Ok(Self { domain, bus, device: device as u8, function: function as u8 })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:02x}:{:02x}.{:x}", self.domain, self.bus, self.device, self.function)
    }
}

/// BAR0 as the `resource` file lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    pub start: u64,
    pub size: u64,
    pub flags: u64,
}

impl Bar {
    /// IORESOURCE_MEM: a memory BAR (the only kind we can map).
    pub fn is_memory(&self) -> bool {
        self.flags & 0x200 != 0
    }
}

/// What sysfs says about one PCI device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    pub address: PciAddress,
    /// `<sysfs>/bus/pci/devices/<address>`.
    pub path: PathBuf,
    pub vendor: u16,
    pub device: u16,
    pub subsystem_vendor: u16,
    pub subsystem_device: u16,
    /// Name of the bound driver (`igb`, `vfio-pci`, `uio_pci_generic`), if any.
    pub driver: Option<String>,
    /// IOMMU group number, if the device has one.
    pub iommu_group: Option<u32>,
    pub bar0: Option<Bar>,
}

/// A sysfs tree (normally `/sys`).
#[derive(Debug, Clone)]
pub struct Sysfs {
    pub root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Self { root: "/sys".into() }
    }
}

impl Sysfs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn device_path(&self, address: PciAddress) -> PathBuf {
        self.root.join("bus/pci/devices").join(address.to_string())
    }

    /// Reads the device's ids, driver, IOMMU group and BAR0.
    pub fn device(&self, address: PciAddress) -> Result<PciDevice, Error> {
        let path = self.device_path(address);
        if !path.exists() {
            return Err(Error::DeviceAbsent { address });
        }
        let id = |name: &str| read_hex(&path.join(name)).map(|v| v as u16);
        let resource = fs::read_to_string(path.join("resource"))
            .map_err(|e| Error::io("read", path.join("resource"), e))?;
        Ok(PciDevice {
            address,
            vendor: id("vendor")?,
            device: id("device")?,
            subsystem_vendor: id("subsystem_vendor")?,
            subsystem_device: id("subsystem_device")?,
            driver: link_name(&path.join("driver")),
            iommu_group: link_name(&path.join("iommu_group")).and_then(|g| g.parse().ok()),
            bar0: parse_resource(&resource).first().copied().filter(|b| b.size > 0),
            path,
        })
    }

    /// The other devices in IOMMU group `group`, with their drivers.
    pub fn iommu_group_members(&self, group: u32) -> Result<Vec<(PciAddress, Option<String>)>, Error> {
        let dir = self.root.join("kernel/iommu_groups").join(group.to_string()).join("devices");
        let entries = fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
        let mut members: Vec<_> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.parse::<PciAddress>().ok())
            .map(|a| (a, link_name(&self.device_path(a).join("driver"))))
            .collect();
        members.sort();
        Ok(members)
    }

    /// The PCI device behind `/dev/uioN` and its map0 (physical address, size).
    pub fn uio_map0(&self, uio: &str) -> Result<(Option<PciAddress>, u64, u64), Error> {
        let base = self.root.join("class/uio").join(uio);
        if !base.exists() {
            return Err(Error::UioAbsent { name: uio.to_string() });
        }
        let map0 = base.join("maps/map0");
        if !map0.exists() {
            return Err(Error::InvalidSpec {
                input: format!("/dev/{uio}"),
                reason: "it exports no memory map (old uio_pci_generic, or a 64-bit BAR0): use sysfs:<pci address>".into(),
            });
        }
        let (addr, size) = (read_hex(&map0.join("addr"))?, read_hex(&map0.join("size"))?);
        let device = link_name(&base.join("device")).and_then(|d| d.parse().ok());
        Ok((device, addr, size))
    }
}

/// Parses a sysfs `resource` file: one `0xSTART 0xEND 0xFLAGS` line per BAR/ROM/etc.
pub fn parse_resource(text: &str) -> Vec<Bar> {
    text.lines()
        .filter_map(|line| {
            let mut f =
                line.split_whitespace().map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok());
            let (start, end, flags) = (f.next()??, f.next()??, f.next()??);
            let size = if end > start || (start != 0 && end == start) { end - start + 1 } else { 0 };
            Some(Bar { start, size, flags })
        })
        .collect()
}

/// Reads a sysfs hex attribute such as `0x8086`.
pub fn read_hex(path: &Path) -> Result<u64, Error> {
    let text = fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let t = text.trim();
    u64::from_str_radix(t.trim_start_matches("0x"), 16)
        .map_err(|_| Error::io("parse", path, std::io::Error::other(format!("{t:?} is not a hex number"))))
}

/// The last component of a symlink's target (driver name, group number), if the link exists.
fn link_name(link: &Path) -> Option<String> {
    fs::read_link(link).ok()?.file_name()?.to_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print() {
        let a: PciAddress = "0000:01:00.0".parse().unwrap();
        assert_eq!(a, PciAddress { domain: 0, bus: 1, device: 0, function: 0 });
        assert_eq!(a.to_string(), "0000:01:00.0");
        assert_eq!("02:1f.7".parse::<PciAddress>().unwrap().to_string(), "0000:02:1f.7");
        assert_eq!("ABCD:ff:1f.7".parse::<PciAddress>().unwrap().to_string(), "abcd:ff:1f.7");
        for (bad, why) in [
            ("", "no '.'"),
            ("0000:01:00", "no '.'"),
            ("0000:01:20.0", "at most 1f"),
            ("0000:01:00.8", "0-7"),
            ("00000:01:00.0", "domain"),
            ("0000:001:00.0", "bus"),
            ("zz:00.0", "bus"),
            ("1:2:3:4.0", "expected"),
            ("0000:01:00.0 ", "function"),
        ] {
            let e = bad.parse::<PciAddress>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("0000:01:00.0"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn resource_lines_give_bar_sizes() {
        let text = "0x00000000febc0000 0x00000000febdffff 0x0000000000040200\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x000000000000c000 0x000000000000c01f 0x0000000000040101\n";
        let bars = parse_resource(text);
        assert_eq!(bars[0], Bar { start: 0xfebc0000, size: 0x20000, flags: 0x40200 });
        assert!(bars[0].is_memory());
        assert_eq!(bars[1].size, 0);
        assert_eq!(bars[2].size, 0x20);
        assert!(!bars[2].is_memory());
        assert!(parse_resource("garbage\n").is_empty());
    }
}
