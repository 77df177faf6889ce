//! What each supported NIC's clock is — family, counter format, resolution, wrap, limits, pins —
//! and the quirks of particular boards, keyed on PCI ids: one table each, looked up once at open.

use bitflags::bitflags;

use crate::regs::timinca;

/// A clock family: models whose SYSTIM counts alike and are driven by the same clock ops
/// (igb_ptp.c's per-family functions; facts in docs igb-family.md §2 and §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// 82574/82583 (e1000e): 64-bit SYSTIM in 2^-18 ns, unreliable reads (erratum).
    E82574,
    /// 82576: 64-bit SYSTIM in 2^-19 ns, TIMINCA period/value.
    E82576,
    /// 82580/i350/i354: 40-bit ns counter + SYSTIMR residue, ISGN rate word.
    E82580,
    /// i210/i211: SYSTIMH seconds + SYSTIML ns, ISGN rate word, direct set.
    I210,
}

/// Which SDPs can do what, and with how many timers (igb-family.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pins {
    /// Software-definable pins (SDP0..n-1).
    pub sdps: u8,
    /// Bit n set: SDPn can output a PPS / periodic signal (target time or FREQOUT).
    pub pps_out: u8,
    /// Bit n set: SDPn can timestamp an input edge (AUXSTMP).
    pub extts: u8,
    /// Target-time / periodic-output channels (TRGTTIM0/1).
    pub perout_channels: u8,
    /// External-timestamp channels (AUXSTMP0/1).
    pub extts_channels: u8,
    /// FREQOUT (clock output from a half period in ns) exists (i210).
    pub freqout: bool,
}

impl Pins {
    /// The SDP numbers whose bit is set in `mask`.
    pub fn list(mask: u8) -> Vec<u8> {
        (0..8).filter(|n| mask & (1 << n) != 0).collect()
    }
}

const NO_PINS: Pins =
    Pins { sdps: 0, pps_out: 0, extts: 0, perout_channels: 0, extts_channels: 0, freqout: false };

/// How a family's clock counts and how finely it can be steered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FamilySpec {
    pub family: Family,
    /// Shown by `nicclockd probe`.
    pub name: &'static str,
    /// SYSTIM's layout in words.
    pub counter: &'static str,
    /// log2 of counter ticks per ns (ns per LSB = 2^-tick_shift).
    pub tick_shift: u32,
    /// How long the counter runs before it wraps, ns.
    pub wrap_ns: u128,
    /// One TIMINCA LSB at the nominal rate, ppb (on real silicon).
    pub rate_lsb_ppb: f64,
    /// Largest frequency adjustment the hardware takes, ppb (Linux's max_adj).
    pub max_adj_ppb: f64,
    /// Which register read latches the counter.
    pub latch: &'static str,
    pub pins: Pins,
}

impl FamilySpec {
    /// ns per counter LSB.
    pub fn ns_per_lsb(&self) -> f64 {
        1.0 / (1u64 << self.tick_shift) as f64
    }
}

impl Family {
    pub fn spec(self) -> &'static FamilySpec {
        FAMILIES.iter().find(|s| s.family == self).expect("every family has a spec")
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.spec().name)
    }
}

/// The family table (igb-family.md §10).
pub const FAMILIES: [FamilySpec; 4] = [
    FamilySpec {
        family: Family::E82574,
        name: "82574",
        counter: "64-bit SYSTIMH:SYSTIML in 2^-18 ns (46 ns bits)",
        tick_shift: 18,
        wrap_ns: 1 << 46,
        // 1 / 0xA00000
        rate_lsb_ppb: 1e9 / (40u64 << 18) as f64,
        max_adj_ppb: 599_999_900.0,
        latch: "SYSTIML (unreliable: re-read and sanitized)",
        pins: NO_PINS,
    },
    FamilySpec {
        family: Family::E82576,
        name: "82576",
        counter: "64-bit SYSTIMH:SYSTIML in 2^-19 ns (45 ns bits)",
        tick_shift: 19,
        wrap_ns: 1 << 45,
        // 1 / 2^23
        rate_lsb_ppb: 1e9 / (1u64 << 23) as f64,
        max_adj_ppb: 999_999_881.0,
        latch: "SYSTIML",
        pins: NO_PINS,
    },
    FamilySpec {
        family: Family::E82580,
        name: "82580/i350/i354",
        counter: "40-bit ns SYSTIMH[7:0]:SYSTIML + SYSTIMR residue",
        tick_shift: 0,
        wrap_ns: 1 << 40,
        // 2^-32 ns per 8 ns tick = 2^-35
        rate_lsb_ppb: 1e9 / (1u64 << 35) as f64,
        max_adj_ppb: 62_499_999.0,
        latch: "SYSTIMR",
        pins: Pins {
            sdps: 4,
            pps_out: 0b1111,
            extts: 0b1111,
            perout_channels: 2,
            extts_channels: 2,
            freqout: false,
        },
    },
    FamilySpec {
        family: Family::I210,
        name: "i210/i211",
        counter: "SYSTIMH seconds (32 bits) + SYSTIML ns (0..999999999) + SYSTIMR residue",
        tick_shift: 0,
        wrap_ns: (1u128 << 32) * 1_000_000_000,
        rate_lsb_ppb: 1e9 / (1u64 << 35) as f64,
        max_adj_ppb: 62_499_999.0,
        latch: "SYSTIMR",
        pins: Pins {
            sdps: 4,
            pps_out: 0b1111,
            extts: 0b1111,
            perout_channels: 2,
            extts_channels: 2,
            freqout: true,
        },
    },
];

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
    pub family: Family,
    /// TIMINCA the Linux driver programs for the nominal rate (0 on 82580+: a fixed 8 ns tick).
    pub base_timinca: u32,
    /// The TIMADJ register pair, if the model has one the driver may use for phase steps.
    pub timadj: Option<TimadjFormat>,
}

impl Model {
    pub fn spec(&self) -> &'static FamilySpec {
        self.family.spec()
    }
}

pub const INTEL: u16 = 0x8086;

const fn igb(name: &'static str, device_ids: &'static [u16], family: Family) -> Model {
    Model { name, device_ids, family, base_timinca: 0, timadj: None }
}

/// The model table: every PTP-capable model of igb-family.md §7.
pub const MODELS: [Model; 7] = [
    Model {
        name: "82574",
        // 82574L, 82574LA, 82583V
        device_ids: &[0x10D3, 0x10F6, 0x150C],
        family: Family::E82574,
        // 25 MHz: one tick every 40 ns adds 40 ns in 2^-18 ns units.
        base_timinca: timinca(1, 40 << 18),
        timadj: None,
    },
    Model {
        name: "82576",
        device_ids: &[0x10C9, 0x10E6, 0x10E7, 0x10E8, 0x1526, 0x150A, 0x1518, 0x150D],
        family: Family::E82576,
        // Every 16 ns, 16 ns in 2^-19 ns units.
        base_timinca: timinca(1, 16 << 19),
        timadj: Some(TimadjFormat::SignMagnitude),
    },
    // 82580 and the DH89xxCC (82580-class MAC).
    igb(
        "82580",
        &[0x150E, 0x150F, 0x1510, 0x1511, 0x1516, 0x1527, 0x0438, 0x043A, 0x043C, 0x0440],
        Family::E82580,
    ),
    igb("i350", &[0x1521, 0x1522, 0x1523, 0x1524, 0x1546], Family::E82580),
    igb("i354", &[0x1F40, 0x1F41, 0x1F45], Family::E82580),
    igb("i210", &[0x1533, 0x1536, 0x1537, 0x1538, 0x157B, 0x157C, 0x1534, 0x1535, 0x15F6], Family::I210),
    igb("i211", &[0x1539], Family::I210),
];

/// Models whose ids are known but which have no clock this driver can use, and why.
pub const REFUSED: [(&str, &[u16], &str); 3] = [
    ("82575", &[0x10A7, 0x10A9, 0x10D6], "the 82575 has no IEEE 1588 clock"),
    (
        "82576 VF",
        &[0x10CA, 0x152D],
        "a virtual function: the PTP registers belong to the physical function (open that one)",
    ),
    (
        "i350 VF",
        &[0x1520, 0x152F],
        "a virtual function: the PTP registers belong to the physical function (open that one)",
    ),
];

/// The model of Intel device `device_id`.
pub fn model(vendor: u16, device_id: u16) -> Option<&'static Model> {
    (vendor == INTEL).then(|| MODELS.iter().find(|m| m.device_ids.contains(&device_id))).flatten()
}

/// Why Intel device `device_id` is known but has no usable clock: (model, reason).
pub fn refused(vendor: u16, device_id: u16) -> Option<(&'static str, &'static str)> {
    (vendor == INTEL).then(|| REFUSED.iter().find(|r| r.1.contains(&device_id)).map(|r| (r.0, r.2))).flatten()
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
        /// The RX stamp latch (RXSTMPL/H) is released by reading RXSATRH, not RXSTMPH (QEMU's
        /// igb; silicon releases it on the RXSTMPH read).
        const RX_STAMP_UNLOCK_RXSATRH = 1 << 6;
        /// The RX stamp latch takes only the message type TSYNCRXCFG names (QEMU's igb ignores
        /// TSYNCRXCTL's type): another slave's Delay_Req cannot take the slave's Sync's latch,
        /// so the slave may read its ring at times of its own (`ptp::pair_wake`). Silicon's
        /// 82576 stamps every event message under the bring-up's type.
        const RX_STAMP_MESSAGE_FILTERED = 1 << 7;
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
/// writes SYSTIM, nor uses TSAUXC).
const QEMU_QUIRKS: Quirks = Quirks::TIMINCA_DISCONTINUOUS
    .union(Quirks::TIMADJ_TWOS_COMPLEMENT)
    .union(Quirks::SIXTEEN_NS_TICK)
    .union(Quirks::RX_STAMP_UNLOCK_RXSATRH)
    .union(Quirks::RX_STAMP_MESSAGE_FILTERED);

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
    fn every_id_of_the_reference_is_in_the_table_with_its_family() {
        // igb-family.md §7, id by id.
        use Family::*;
        let table: [(u16, Family); 39] = [
            (0x10D3, E82574),
            (0x10F6, E82574),
            (0x150C, E82574),
            (0x10C9, E82576),
            (0x10E6, E82576),
            (0x10E7, E82576),
            (0x10E8, E82576),
            (0x1526, E82576),
            (0x150A, E82576),
            (0x1518, E82576),
            (0x150D, E82576),
            (0x150E, E82580),
            (0x150F, E82580),
            (0x1510, E82580),
            (0x1511, E82580),
            (0x1516, E82580),
            (0x1527, E82580),
            (0x0438, E82580),
            (0x043A, E82580),
            (0x043C, E82580),
            (0x0440, E82580),
            (0x1521, E82580),
            (0x1522, E82580),
            (0x1523, E82580),
            (0x1524, E82580),
            (0x1546, E82580),
            (0x1F40, E82580),
            (0x1F41, E82580),
            (0x1F45, E82580),
            (0x1533, I210),
            (0x1536, I210),
            (0x1537, I210),
            (0x1538, I210),
            (0x157B, I210),
            (0x157C, I210),
            (0x1534, I210),
            (0x1535, I210),
            (0x15F6, I210),
            (0x1539, I210),
        ];
        for (id, family) in table {
            assert_eq!(model(INTEL, id).map(|m| m.family), Some(family), "{id:#06x}");
        }
        for id in [0x10A7, 0x10A9, 0x10D6, 0x10CA, 0x152D, 0x1520, 0x152F] {
            assert!(model(INTEL, id).is_none() && refused(INTEL, id).is_some(), "{id:#06x} is refused");
        }
        let total: usize = MODELS.iter().map(|m| m.device_ids.len()).sum();
        assert_eq!(total, 39, "no id twice, none missing");
    }

    #[test]
    fn family_specs_hold_the_reference_figures() {
        let s = Family::E82576.spec();
        assert!((s.rate_lsb_ppb - 119.209).abs() < 1e-3 && s.wrap_ns == 1 << 45);
        assert_eq!(s.ns_per_lsb(), 1.0 / 524_288.0);
        let s = Family::E82574.spec();
        assert!((s.rate_lsb_ppb - 95.367).abs() < 1e-3);
        let s = Family::E82580.spec();
        assert!((s.rate_lsb_ppb - 0.0291).abs() < 1e-4 && s.max_adj_ppb == 62_499_999.0);
        assert!((s.wrap_ns as f64 / 60e9 - 18.33).abs() < 0.01, "18.3 minutes");
        assert_eq!(Family::I210.spec().pins.pps_out, 0b1111);
        assert!(Family::I210.spec().pins.freqout && !Family::E82580.spec().pins.freqout);
        assert_eq!(Family::E82576.spec().pins.sdps, 0);
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
