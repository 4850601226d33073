//! The privilege rule: what the daemon does on a user's behalf, and with whose rights.
//!
//! The daemon usually runs as root, and a request reaches it from another user through
//! `.snapshots/.control` (or `mkdir`/`rmdir` in `.snapshots`), which only the share's owner (the
//! owner of its root directory) and root may use (`fuse/snapshots.rs`). So:
//!
//! - **Inside the store and the share**, a request acts with the daemon's rights, for the share's
//!   owner as its administrator: every request but those below (snapshots, holds, policy,
//!   restore and rollback within the share, gc, verify, diff, log, status). These are not
//!   checked against the owner's own permissions on the paths they name: the share's owner is
//!   trusted with everything in the share and its snapshots (a restore can bring back, a diff
//!   or log can name, what lies in another user's private directory).
//! - **Outside the share**, the daemon acts only for root, or for the user it runs as (who has
//!   those rights already); anyone else is refused with `EPERM` before anything is done. The
//!   requests that reach outside are listed by [`outside_the_share`], which matches every kind
//!   of request, so a new kind must be classified here before it compiles. Today that is
//!   `clone` (it creates a store at a path it names), `backup` (it writes to a vault) and a
//!   `policy set` that changes the backup schedule (the daemon will write to those vaults and
//!   read the key file it names, with its own rights, at every slot).
//! - **Commands**: the daemon runs one command, the `--on-failure` hook, which is given by
//!   whoever starts the daemon; no request can set or change it.
//!
//! The `snapfs` command on an unmounted store acts as its own user, so its requests pass this
//! rule, and the OS checks what they touch.

use super::ServiceError;
use super::request::{PolicyAction, Request};
use crate::access::Requester;

/// What `request` does outside the share, if anything: the reason it needs privilege.
fn outside_the_share(request: &Request) -> Option<&'static str> {
    match request {
        Request::Clone(_) => Some("clone creates a store outside the share"),
        Request::Backup(_) => Some("backup writes to a vault outside the share"),
        Request::VaultRestore(_) => Some("vault restore reads a vault outside the share"),
        Request::Policy {
            action: PolicyAction::Set(change),
        } if change.changes_backups() => Some(
            "a backup schedule makes the daemon write to vaults outside the share and read a \
             key file",
        ),
        Request::Create(_)
        | Request::Delete(_)
        | Request::List(_)
        | Request::Undelete(_)
        | Request::Purge(_)
        | Request::Hold(_)
        | Request::Release(_)
        | Request::Gc
        | Request::Usage
        | Request::Verify(_)
        | Request::Restore(_)
        | Request::Rollback(_)
        | Request::Diff(_)
        | Request::Log(_)
        | Request::Policy { .. }
        | Request::Status(_)
        | Request::Report(_)
        | Request::Job(_)
        | Request::TierStatus
        | Request::TierCache(_)
        | Request::Clock(_) => None,
    }
}

/// Refuses (`EPERM`) a request that acts outside the share unless `who` is root or `acting_uid`,
/// the user this process runs as.
pub fn authorize(request: &Request, who: &Requester, acting_uid: u32) -> Result<(), ServiceError> {
    match outside_the_share(request) {
        Some(reason) if !who.is_root() && who.uid != acting_uid => Err(ServiceError {
            errno: libc::EPERM,
            message: format!(
                "{reason}, which the daemon does only for root (uid 0); uid {} may not (run \
                 `snapfs clone --store` as yourself on the unmounted store instead)",
                who.uid
            ),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::request::{CloneArgs, Named, PolicySetArgs};

    fn user(uid: u32) -> Requester {
        Requester {
            uid,
            gid: uid,
            groups: Vec::new(),
            cap_fsetid: uid == 0,
        }
    }

    #[test]
    fn only_root_or_the_daemons_own_user_may_act_outside_the_share() {
        let clone = Request::Clone(CloneArgs {
            snapshot: "s".into(),
            new_store: "/srv/elsewhere".into(),
        });
        let err = authorize(&clone, &user(1000), 0).expect_err("refused");
        assert_eq!(err.errno, libc::EPERM);
        assert!(err.message.contains("only for root"), "{}", err.message);
        assert!(authorize(&clone, &Requester::ROOT, 0).is_ok());
        assert!(
            authorize(&clone, &user(1000), 1000).is_ok(),
            "its own rights"
        );
        assert!(authorize(&clone, &user(1001), 1000).is_err());
        let create = Request::Create(Named { name: "s".into() });
        assert!(authorize(&create, &user(1000), 0).is_ok());
        let policy = |change: PolicySetArgs| Request::Policy {
            action: PolicyAction::Set(change),
        };
        let schedule = policy(PolicySetArgs {
            backup_to: vec!["/srv/vault".into()],
            ..PolicySetArgs::default()
        });
        assert_eq!(
            authorize(&schedule, &user(1000), 0).map_err(|e| e.errno),
            Err(libc::EPERM)
        );
        assert!(authorize(&schedule, &Requester::ROOT, 0).is_ok());
        let snapshots_only = policy(PolicySetArgs {
            keep_daily: Some(7),
            ..PolicySetArgs::default()
        });
        assert!(authorize(&snapshots_only, &user(1000), 0).is_ok());
    }
}
