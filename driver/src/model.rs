//! What each supported NIC's clock is (SYSTIM format, increment, limits) and the quirks of
//! particular boards, keyed on PCI ids: one table each, looked up once at open.

use bitflags::bitflags;

use crate::regs::timinca;

/// How a model's SYSTIM counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystimFormat {
    /// 64-bit count of 2^-shift ns (82574: shift 18, 82576: shift 19), SYSTIML then SYSTIMH.
    Fractional { shift: u32 },
    /// 40-bit ns with a sub-ns residue register (82580/i350), SYSTIMR first.
    Ns40,
    /// SYSTIMH seconds, SYSTIML ns (i210/i211), SYSTIMR first.
    SecondsNs,
}

/// How a model's TIMADJL/TIMADJH pair encodes an offset (applied when TIMADJH is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimadjFormat {
    /// 82576 datasheet: TIMADJH bit 31 is the sign, the other 63 bits the magnitude in SYSTIM units.
    SignMagnitude,
    /// QEMU's emulation: a 64-bit two's complement value in SYSTIM units.
    TwosComplement,
}

/// One supported NIC model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    pub name: &'static str,
    pub device_ids: &'static [u16],
    pub systim: SystimFormat,
    /// TIMINCA the Linux driver programs for the nominal rate.
    pub base_timinca: u32,
    /// Largest frequency adjustment the hardware takes, ppb.
    pub max_adj_ppb: f64,
    /// The TIMADJ register pair, if the model has one the driver may use for phase steps.
    pub timadj: Option<TimadjFormat>,
    /// Whether this driver supports the model yet (ids recognised either way).
    pub supported: bool,
}

pub const INTEL: u16 = 0x8086;

/// The model table.
pub const MODELS: [Model; 4] = [
    Model {
        name: "82574",
        device_ids: &[0x10D3, 0x10F6, 0x150C],
        systim: SystimFormat::Fractional { shift: 18 },
        // 25 MHz: one tick every 40 ns adds 40 ns in 2^-18 ns units.
        base_timinca: timinca(1, 40 << 18),
        max_adj_ppb: 599_999_900.0,
        timadj: None,
        supported: true,
    },
    Model {
        name: "82576",
        device_ids: &[0x10C9, 0x10E6, 0x10E7, 0x10E8, 0x1526, 0x150A, 0x1518, 0x150D],
        systim: SystimFormat::Fractional { shift: 19 },
        // Every 16 ns, 16 ns in 2^-19 ns units.
        base_timinca: timinca(1, 16 << 19),
        max_adj_ppb: 999_999_881.0,
        timadj: Some(TimadjFormat::SignMagnitude),
        supported: true,
    },
    Model {
        name: "i350",
        device_ids: &[0x1521, 0x1522, 0x1523, 0x1524, 0x150E, 0x150F, 0x1510, 0x1511, 0x1516, 0x1527],
        systim: SystimFormat::Ns40,
        base_timinca: 0,
        max_adj_ppb: 62_499_999.0,
        timadj: None,
        supported: false,
    },
    Model {
        name: "i210",
        device_ids: &[0x1533, 0x1536, 0x1537, 0x1538, 0x157B, 0x157C, 0x1539],
        systim: SystimFormat::SecondsNs,
        base_timinca: 0,
        max_adj_ppb: 62_499_999.0,
        timadj: None,
        supported: false,
    },
];

/// The model of Intel device `device_id`.
pub fn model(vendor: u16, device_id: u16) -> Option<&'static Model> {
    (vendor == INTEL).then(|| MODELS.iter().find(|m| m.device_ids.contains(&device_id))).flatten()
}

bitflags! {
    /// Departures from the datasheet behaviour of a board.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Quirks: u32 {
        /// A TIMINCA write jumps SYSTIM (QEMU: compensation with the wrong sign, unsigned wrap):
        /// steer the rate in software.
        const TIMINCA_DISCONTINUOUS = 1 << 0;
        /// SYSTIM counts INCVALUE/(16·INCPERIOD) units per ns whatever the model's clock is
        /// (QEMU's e1000e): program INCPERIOD 1, INCVALUE 16 << shift for 1 ns/ns.
        const SIXTEEN_NS_TICK = 1 << 3;
        /// TIMADJ takes a 64-bit two's complement value (QEMU), whatever the model's datasheet says.
        const TIMADJ_TWOS_COMPLEMENT = 1 << 5;
    }
}

/// A quirk-table row: ids to match and what they imply.
#[derive(Debug, Clone, Copy)]
pub struct QuirkEntry {
    pub description: &'static str,
    pub device_id: u16,
    pub subsystem_vendor: u16,
    pub subsystem_device: u16,
    /// The ids are also used by real boards: apply only when the machine is a virtual machine.
    pub only_in_vm: bool,
    pub quirks: Quirks,
}

/// What QEMU's emulation does differently (besides what the driver never relies on: it never
/// writes SYSTIM, nor uses RX/TX stamps or TSAUXC).
const QEMU_QUIRKS: Quirks =
    Quirks::TIMINCA_DISCONTINUOUS.union(Quirks::TIMADJ_TWOS_COMPLEMENT).union(Quirks::SIXTEEN_NS_TICK);

/// The quirk table. QEMU's igb carries the Red Hat subsystem 1af4:1100; QEMU's e1000e keeps
/// Intel's default subsystem 8086:0000, which real boards may use too, hence `only_in_vm`.
pub const QUIRKS: [QuirkEntry; 2] = [
    QuirkEntry {
        description: "QEMU emulated 82576 (igb)",
        device_id: 0x10C9,
        subsystem_vendor: 0x1AF4,
        subsystem_device: 0x1100,
        only_in_vm: false,
        quirks: QEMU_QUIRKS,
    },
    QuirkEntry {
        description: "QEMU emulated 82574L (e1000e)",
        device_id: 0x10D3,
        subsystem_vendor: 0x8086,
        subsystem_device: 0x0000,
        only_in_vm: true,
        quirks: QEMU_QUIRKS,
    },
];

/// The PCI subsystem ids of QEMU's emulation of `device_id`, from the quirk table.
pub fn qemu_subsystem(device_id: u16) -> Option<(u16, u16)> {
    QUIRKS
        .iter()
        .find(|q| q.device_id == device_id && q.quirks == QEMU_QUIRKS)
        .map(|q| (q.subsystem_vendor, q.subsystem_device))
}

/// The quirks of a device, and the table row that gave them.
pub fn quirks(
    device_id: u16,
    subsystem_vendor: u16,
    subsystem_device: u16,
    in_vm: bool,
) -> (Quirks, Option<&'static str>) {
    QUIRKS
        .iter()
        .find(|q| {
            q.device_id == device_id
                && q.subsystem_vendor == subsystem_vendor
                && q.subsystem_device == subsystem_device
                && (!q.only_in_vm || in_vm)
        })
        .map_or((Quirks::empty(), None), |q| (q.quirks, Some(q.description)))
}

/// Whether this machine is a virtual machine (the CPU's hypervisor flag).
pub fn running_in_vm() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| {
            c.lines()
                .find(|l| l.starts_with("flags"))
                .is_some_and(|l| l.split_whitespace().any(|f| f == "hypervisor"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_found_by_id() {
        assert_eq!(model(INTEL, 0x10D3).unwrap().name, "82574");
        assert_eq!(model(INTEL, 0x10C9).unwrap().name, "82576");
        assert_eq!(model(INTEL, 0x1521).unwrap().name, "i350");
        assert_eq!(model(INTEL, 0x1533).unwrap().name, "i210");
        assert!(model(INTEL, 0x1234).is_none());
        assert!(model(0x10EC, 0x10D3).is_none(), "vendor matters");
    }

    #[test]
    fn base_increments_are_one_ns_per_ns_in_each_models_units() {
        // units per ns = INCVALUE / (16 ns · INCPERIOD); ns = units >> shift
        let m = model(INTEL, 0x10C9).unwrap();
        assert_eq!(m.base_timinca, 0x0180_0000);
        assert_eq!((m.base_timinca & 0xFF_FFFF) / 16, 1 << 19);
        let m = model(INTEL, 0x10D3).unwrap();
        assert_eq!(m.base_timinca, 0x01A0_0000);
        // 82574 real silicon ticks every 40 ns (25 MHz), not 16.
        assert_eq!((m.base_timinca & 0xFF_FFFF) / 40, 1 << 18);
    }

    #[test]
    fn qemu_quirks_need_the_right_subsystem() {
        assert!(quirks(0x10C9, 0x1AF4, 0x1100, false).0.contains(Quirks::TIMINCA_DISCONTINUOUS));
        assert!(quirks(0x10C9, 0x8086, 0xA03C, true).0.is_empty(), "a real 82576 in a VM (passthrough)");
        assert!(quirks(0x10D3, 0x8086, 0x0000, true).0.contains(Quirks::SIXTEEN_NS_TICK));
        assert!(quirks(0x10D3, 0x8086, 0x0000, false).0.is_empty(), "Intel's default ids on bare metal");
        assert_eq!(qemu_subsystem(0x10C9), Some((0x1AF4, 0x1100)));
        assert_eq!(qemu_subsystem(0x10D3), Some((0x8086, 0x0000)));
        assert_eq!(qemu_subsystem(0x1533), None, "QEMU has no i210");
    }
}
