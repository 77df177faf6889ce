//! The driver's PHY link bring-up (net/phy.rs): MDIC reads and writes against the simulated PHY,
//! autonegotiation restarted with BMCR 0x1340 and STATUS.LU waited for in virtual time, and each
//! way it fails named: MDIC never ready, MDIC error, an answer for the wrong register, no link.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use nicclock_driver::model::Family;
use nicclock_driver::net::bringup::{bring_up_with_link, BringupError, RingPlace};
use nicclock_driver::net::phy::{self, mii, LinkUp, PhyError, BMCR_RESTART_AUTONEG, MDIC};
use nicclock_driver::regs;
use nicclock_driver::sim::{SimConfig, SimNic};
use nicclock_driver::timesource::{TimeSource, VirtualTime};
use nicclock_uio::RegisterAccess;

fn sim(link_up_at_reset: bool) -> (std::sync::Arc<VirtualTime>, SimNic) {
    let time = VirtualTime::new();
    let nic = SimNic::new(SimConfig { link_up_at_reset, ..SimConfig::ideal() }, time.clone());
    (time, nic)
}

#[test]
fn mdic_reads_the_phy_and_refuses_what_it_lacks() {
    let (_, nic) = sim(false);
    let mut never = |_: Duration| panic!("the simulated PHY answers at once");
    assert_eq!(phy::read_phy_with(&nic, mii::PHYID1, &mut never).unwrap(), 0x02A8);
    assert_eq!(phy::read_phy_with(&nic, mii::PHYID2, &mut never).unwrap(), 0x0390);
    let err = phy::read_phy_with(&nic, 17, &mut never).unwrap_err();
    assert!(matches!(err, PhyError::MdicError { op: "read", reg: 17, .. }), "{err:?}");
    let err = phy::write_phy_with(&nic, mii::BMSR, 0, &mut never).unwrap_err();
    assert!(matches!(err, PhyError::MdicError { op: "write", reg: 1, .. }), "BMSR is read-only: {err:?}");
    assert!(err.to_string().contains("no PHY at address 1"), "{err}");
}

#[test]
fn autonegotiation_brings_status_lu_after_qemus_500_ms() {
    let (time, nic) = sim(false);
    assert_eq!(nic.read32(regs::STATUS) & phy::STATUS_LU, 0, "down from reset");
    let t0 = time.now_ns();
    let up =
        phy::link_up_with(&nic, Duration::from_secs(5), &mut |d| time.advance(d.as_nanos() as u64)).unwrap();
    assert_eq!(up, LinkUp::Negotiated { after: Duration::from_millis(500) });
    assert_eq!(time.now_ns() - t0, 500_000_000);
    let bmsr = phy::read_phy(&nic, mii::BMSR).unwrap();
    assert_eq!(bmsr & (mii::BMSR_LSTATUS | mii::BMSR_ANEGCOMPLETE), 0x24);
    assert_eq!(
        phy::read_phy(&nic, mii::BMCR).unwrap(),
        BMCR_RESTART_AUTONEG & !mii::BMCR_ANRESTART,
        "restart self-clears"
    );
    // A link already up is left alone: no restart, no wait.
    let up = phy::link_up_with(&nic, Duration::from_secs(5), &mut |_| panic!("no wait")).unwrap();
    assert_eq!(up, LinkUp::AlreadyUp);
    assert!(nic.link_is_up());
}

/// A register file whose MDIC answers as told.
struct FakeMdic {
    answer: fn(u32) -> u32,
    mdic: RefCell<u32>,
    regs: RefCell<HashMap<usize, u32>>,
}

impl RegisterAccess for FakeMdic {
    fn len(&self) -> usize {
        0x20000
    }
    fn read32(&self, offset: usize) -> u32 {
        if offset == MDIC {
            return *self.mdic.borrow();
        }
        self.regs.borrow().get(&offset).copied().unwrap_or(0)
    }
    fn write32(&self, offset: usize, value: u32) {
        if offset == MDIC {
            *self.mdic.borrow_mut() = (self.answer)(value);
        } else {
            self.regs.borrow_mut().insert(offset, value);
        }
    }
}

fn fake(answer: fn(u32) -> u32) -> FakeMdic {
    FakeMdic { answer, mdic: RefCell::new(0), regs: RefCell::default() }
}

#[test]
fn mdic_that_never_gets_ready_is_a_bounded_named_error() {
    let f = fake(|v| v & !phy::mdic::READY);
    let mut pauses = 0u32;
    let err = phy::read_phy_with(&f, mii::BMSR, &mut |d| {
        assert_eq!(d, Duration::from_micros(50));
        pauses += 1;
    })
    .unwrap_err();
    assert_eq!(pauses, 1919, "Linux's 1920 polls, 50 us apart");
    assert!(matches!(err, PhyError::MdicTimeout { op: "read", reg: 1, waited_us: 95_950, .. }), "{err:?}");
    assert!(err.to_string().contains("not answering"), "{err}");
}

#[test]
fn a_read_answered_for_another_register_is_refused() {
    let f = fake(|v| (v & !phy::mdic::REG_MASK) | 5 << phy::mdic::REG_SHIFT | phy::mdic::READY | 0x1234);
    let err = phy::read_phy_with(&f, mii::BMSR, &mut |_| {}).unwrap_err();
    assert!(matches!(err, PhyError::MdicWrongRegister { asked: 1, answered: 5, .. }), "{err:?}");
}

#[test]
fn bring_up_with_link_stops_at_a_link_that_never_comes() {
    // The PHY takes the restart, but STATUS.LU never sets (no partner): a named error, bounded.
    let f = fake(|v| v | phy::mdic::READY);
    let ring = |addr| RingPlace { desc_addr: addr, descs: 8 };
    let t0 = std::time::Instant::now();
    let err = bring_up_with_link(&f, Family::E82576, ring(0x1000), ring(0x2000), Duration::from_millis(50))
        .unwrap_err();
    assert!(matches!(err, BringupError::Link(PhyError::LinkDown { .. })), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(f.regs.borrow().get(&0x0100), None, "no queue touched before the link is up");
    assert!(err.to_string().starts_with("link bring-up: link did not come up"), "{err}");
}
