//! Dropping privileges once the device, the page and the exports are open: the daemon keeps its
//! descriptors and mappings, and runs on as an ordinary user with no capabilities at all.

use anyhow::{Context, Result};
use caps::CapSet;
use nix::unistd::{setgid, setgroups, setuid, Gid, Group, Uid, User};

use crate::args::UsageError;

/// Resolves `--user`/`--group` (names or numbers) before anything is opened, so a typo is a usage
/// error and not a half-started daemon.
pub fn resolve(user: &str, group: Option<&str>) -> Result<(Uid, Gid)> {
    let (uid, primary) = match user.parse::<u32>() {
        Ok(uid) => (Uid::from_raw(uid), User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.gid)),
        Err(_) => match User::from_name(user) {
            Ok(Some(u)) => (u.uid, Some(u.gid)),
            _ => {
                return Err(UsageError(format!(
                    "--user {user:?}: no such user (give a user name or a numeric uid)"
                ))
                .into())
            }
        },
    };
    let gid = match group {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => Gid::from_raw(gid),
            Err(_) => match Group::from_name(g) {
                Ok(Some(gr)) => gr.gid,
                _ => {
                    return Err(UsageError(format!(
                        "--group {g:?}: no such group (give a group name or a numeric gid)"
                    ))
                    .into())
                }
            },
        },
        None => primary
            .ok_or_else(|| UsageError(format!("--user {user}: no primary group known; give --group")))?,
    };
    Ok((uid, gid))
}

/// Becomes `uid`:`gid` with no supplementary groups, an empty capability bounding set, no
/// capabilities and no way to regain any (no_new_privs).
pub fn drop_to(uid: Uid, gid: Gid) -> Result<()> {
    // The bounding set can only be emptied while we still hold CAP_SETPCAP, i.e. first.
    caps::clear(None, CapSet::Bounding).context("clearing the capability bounding set")?;
    setgroups(&[]).context("dropping supplementary groups")?;
    setgid(gid).with_context(|| format!("setgid({gid})"))?;
    setuid(uid).with_context(|| format!("setuid({uid})"))?;
    // Leaving uid 0 clears the permitted and effective sets; make sure nothing is left anywhere.
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable, CapSet::Ambient] {
        caps::clear(None, set).with_context(|| format!("clearing the {set:?} capabilities"))?;
    }
    nix::sys::prctl::set_no_new_privs().context("setting no_new_privs")?;
    Ok(())
}
