//! Where frequency corrections go: the NIC's TIMINCA (real silicon) or the timecounter (QEMU,
//! whose TIMINCA writes jump the clock), and `--steer`'s choice between them.

use crate::model::Quirks;

/// Where frequency corrections go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steering {
    /// TIMINCA: the NIC itself runs at the corrected rate (real silicon).
    Hardware,
    /// The NIC free-runs; the correction lives in the timecounter (QEMU, or by choice).
    Software,
}

impl std::fmt::Display for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Hardware => "hw (TIMINCA)",
            Self::Software => "sw (timecounter)",
        })
    }
}

/// `--steer`: explicit, or chosen from the quirks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteerChoice {
    Auto,
    Hardware,
    Software,
}

impl SteerChoice {
    /// hw on real silicon, sw where a quirk says rate writes are unsafe.
    pub fn resolve(self, quirks: Quirks) -> Steering {
        match self {
            Self::Hardware => Steering::Hardware,
            Self::Software => Steering::Software,
            Self::Auto if quirks.contains(Quirks::TIMINCA_DISCONTINUOUS) => Steering::Software,
            Self::Auto => Steering::Hardware,
        }
    }
}

impl std::str::FromStr for SteerChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "hw" => Ok(Self::Hardware),
            "sw" => Ok(Self::Software),
            _ => Err(format!("unknown steering {s:?}: use auto, hw or sw")),
        }
    }
}
