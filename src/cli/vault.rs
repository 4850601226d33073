//! `snapfs vault ...`: create a vault, list its backups, restore one into a new store, verify
//! it, hold, release and delete backups, collect garbage, copy backups to another vault. These
//! act on vaults alone (and, for restore, a new store this process creates), so they run
//! here, not through a daemon.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::progress::{ProgressArgs, with_progress};
use super::target::TargetArgs;
use crate::blob::{self, BlobLocation};
use crate::format::vault_config::KdfParams;
use crate::format::vault_policy::VaultPolicy;
use crate::service::Request;
use crate::service::request::{BytePath, S3Access, VaultAccess, VaultRestoreArgs};
use crate::vault::{
    Secret, Vault, copy, crypto, gc, init, keys, list, prune, restore, retention, verify,
};

#[derive(Args, Debug)]
pub struct VaultArgs {
    #[command(subcommand)]
    pub command: VaultCommand,
}

#[derive(Subcommand, Debug)]
pub enum VaultCommand {
    /// Create a vault in a local directory or at s3://bucket/prefix.
    Init(InitArgs),
    /// List the backups in a vault.
    List(ListArgs),
    /// Make a new store whose live share is a backup; with --path and --mount, put a file or
    /// tree of a backup back into a running share.
    Restore(RestoreArgs),
    /// Serve the backups read-only at a mountpoint (MNT/SHARE/BACKUP/...); stays in the
    /// foreground until unmounted.
    Mount(super::vault_mount::VaultMountArgs),
    /// Check a vault's structure (and, with --read-data, every byte).
    Verify(VerifyArgs),
    /// Protect a backup from deletion until released.
    Hold(BackupArgs),
    /// Remove a backup's hold.
    Release(BackupArgs),
    /// Delete backups (their space is freed by `vault gc`).
    Delete(DeleteArgs),
    /// Free the space no backup uses.
    Gc(GcArgs),
    /// Copy backups (all by default) into another vault, sending only what it lacks.
    Copy(CopyArgs),
    /// Manage the key slots of an encrypted vault.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Set or show the retention policy `vault prune` applies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Delete the backups the retention policy does not keep (never a held one).
    Prune(PruneArgs),
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Store the policy in the vault (counts left out are 0).
    Set(PolicySetArgs),
    /// Print the vault's policy.
    Show(ListArgs),
}

#[derive(Args, Debug)]
pub struct PolicySetArgs {
    pub vault: String,
    /// Keep the newest N backups of each share.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_last: u32,
    /// Keep the newest backup of each of the last N days (of the policy's time zone) that have
    /// one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_daily: u32,
    /// ... of each of the last N ISO weeks.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_weekly: u32,
    /// ... of each of the last N months.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_monthly: u32,
    /// ... of each of the last N years.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_yearly: u32,
    /// Lock the vault: no backup younger than this (`30d`, `12w`) may be deleted, by anyone.
    /// It can only be raised later; without it, the current minimum retention stays.
    #[arg(long, value_name = "DURATION")]
    pub min_retention: Option<String>,
    /// The IANA time zone (`Europe/Berlin`) whose days, weeks, months and years the keep
    /// counts follow; without it, the current zone stays (UTC at first).
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    pub vault: String,
    /// Print the plan, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run `vault gc` afterwards, to free the space of what was removed.
    #[arg(long, conflicts_with = "dry_run")]
    pub gc: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a key slot opened by a new secret (SNAPFS_NEW_PASSPHRASE or --new-key-file).
    Add(NewKeyArgs),
    /// List the key slots.
    List(ListArgs),
    /// Remove a key slot (not the one this secret opens: unlock with another to remove it).
    Remove(RemoveKeyArgs),
    /// Change the secret of the slot this secret opens.
    Passwd(NewKeyArgs),
}

#[derive(Args, Debug)]
pub struct NewKeyArgs {
    pub vault: String,
    /// A file whose bytes are the new key (instead of SNAPFS_NEW_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub new_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
}

impl NewKeyArgs {
    /// The new secret: `--new-key-file`, else `SNAPFS_NEW_PASSPHRASE`.
    fn new_secret(&self) -> anyhow::Result<Secret> {
        if let Some(file) = &self.new_key_file {
            let bytes = std::fs::read(file)
                .with_context(|| format!("cannot read the key file {}", file.display()))?;
            if bytes.is_empty() {
                bail!("the key file {} is empty", file.display());
            }
            return Ok(Secret::KeyFile(bytes));
        }
        match std::env::var("SNAPFS_NEW_PASSPHRASE") {
            Ok(passphrase) if !passphrase.is_empty() => {
                Ok(Secret::Passphrase(passphrase.into_bytes()))
            }
            _ => bail!("give the new secret in SNAPFS_NEW_PASSPHRASE or with --new-key-file"),
        }
    }
}

#[derive(Args, Debug)]
pub struct RemoveKeyArgs {
    pub vault: String,
    /// The slot's number, as `vault key list` shows it.
    pub slot: usize,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// How the vault's secret is given: `SNAPFS_PASSPHRASE`, or a key file.
#[derive(Args, Debug, Clone, Default)]
pub struct KeyArgs {
    /// A file whose bytes are the vault's key (instead of SNAPFS_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The secret, from `--key-file` or `SNAPFS_PASSPHRASE`; `Secret::None` without either.
    pub fn secret(&self) -> anyhow::Result<Secret> {
        if let Some(file) = &self.key_file {
            let bytes = std::fs::read(file)
                .with_context(|| format!("cannot read the key file {}", file.display()))?;
            if bytes.is_empty() {
                bail!("the key file {} is empty", file.display());
            }
            return Ok(Secret::KeyFile(bytes));
        }
        match std::env::var("SNAPFS_PASSPHRASE") {
            Ok(passphrase) if !passphrase.is_empty() => {
                Ok(Secret::Passphrase(passphrase.into_bytes()))
            }
            _ => Ok(Secret::None),
        }
    }

    /// The secret and this process's S3 settings, to send to a daemon.
    pub fn access(&self) -> anyhow::Result<VaultAccess> {
        let mut access = VaultAccess::default();
        match self.secret()? {
            Secret::None => {}
            Secret::Passphrase(bytes) => {
                access.passphrase = Some(String::from_utf8(bytes).context("passphrase")?)
            }
            Secret::KeyFile(bytes) => access.key_hex = Some(crate::id::hex(&bytes)),
        }
        if let (Ok(access_key_id), Ok(secret_access_key)) = (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) {
            access.s3 = Some(S3Access {
                access_key_id,
                secret_access_key,
                region: std::env::var("AWS_REGION")
                    .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|_| "us-east-1".to_owned()),
                endpoint: std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .ok(),
                retry_timeout_secs: Some(crate::blob::retry_timeout_from_env().as_secs()),
            });
        }
        Ok(access)
    }
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// A local directory or s3://bucket/prefix.
    pub vault: String,
    /// Encrypt (the default for s3:// vaults).
    #[arg(long, conflicts_with = "no_encrypt")]
    pub encrypt: bool,
    /// Do not encrypt (the default for local vaults).
    #[arg(long)]
    pub no_encrypt: bool,
    /// Accept a server that ignores conditional writes (If-None-Match): you promise that no
    /// other host creates a vault at this location at the same time.
    #[arg(long)]
    pub single_host: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    pub vault: String,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `vault restore VAULT BACKUP NEW_STORE` makes a new store; `vault restore VAULT BACKUP
/// --path PATH --mount M|--store S [--to DEST] [--overwrite]` puts one entry of the backup
/// back into a share, through its daemon when it is mounted.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    pub vault: String,
    /// The backup: a snapshot name, or SHARE/NAME.
    pub backup: String,
    /// The directory of the new store (absent or empty).
    #[arg(required_unless_present = "path", conflicts_with = "path")]
    pub new_store: Option<PathBuf>,
    /// The file or directory to restore into a share, relative to the backup's root.
    #[arg(long, requires = "share")]
    pub path: Option<BytePath>,
    /// Where to put it in the share (default: where it was).
    #[arg(long, requires = "path")]
    pub to: Option<BytePath>,
    /// Replace what is there now (by default an existing target is refused).
    #[arg(long, requires = "path")]
    pub overwrite: bool,
    /// The mountpoint of the running share to restore into.
    #[arg(long, group = "share", requires = "path")]
    pub mount: Option<PathBuf>,
    /// The store to restore into (through its daemon if it is mounted).
    #[arg(long, group = "share", requires = "path")]
    pub store: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    pub vault: String,
    /// Read every pack and check every object against its id.
    #[arg(long)]
    pub read_data: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    pub vault: String,
    /// The backup: a snapshot name, or SHARE/NAME.
    pub backup: String,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    pub vault: String,
    /// The backups: snapshot names, or SHARE/NAME.
    #[arg(required = true)]
    pub backups: Vec<String>,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    pub vault: String,
    /// Print the plan, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The vault to copy from (its secret: SNAPFS_PASSPHRASE or --key-file).
    pub vault: String,
    /// The vault to copy into, made with `snapfs vault init` (its secret:
    /// SNAPFS_DEST_PASSPHRASE or --dest-key-file, else the source's).
    pub other_vault: String,
    /// The backups to copy (snapshot names or SHARE/NAME); every backup if none.
    pub backups: Vec<String>,
    /// A file whose bytes are the destination vault's key.
    #[arg(long, value_name = "FILE")]
    pub dest_key_file: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

impl CopyArgs {
    /// The destination's secret: `--dest-key-file`, else `SNAPFS_DEST_PASSPHRASE`, else the
    /// source's (one passphrase for both vaults).
    fn dest_secret(&self) -> anyhow::Result<Secret> {
        if let Some(file) = &self.dest_key_file {
            let bytes = std::fs::read(file)
                .with_context(|| format!("cannot read the key file {}", file.display()))?;
            if bytes.is_empty() {
                bail!("the key file {} is empty", file.display());
            }
            return Ok(Secret::KeyFile(bytes));
        }
        match std::env::var("SNAPFS_DEST_PASSPHRASE") {
            Ok(passphrase) if !passphrase.is_empty() => {
                Ok(Secret::Passphrase(passphrase.into_bytes()))
            }
            _ => self.key.secret(),
        }
    }
}

fn location(text: &str) -> anyhow::Result<BlobLocation> {
    Ok(BlobLocation::parse(text)?)
}

fn open(vault: &str, key: &KeyArgs) -> anyhow::Result<Vault> {
    Ok(Vault::open(&location(vault)?, &key.secret()?)?)
}

fn open_for_verify(vault: &str, key: &KeyArgs) -> anyhow::Result<Vault> {
    Ok(Vault::open_unchecked(&location(vault)?, &key.secret()?)?)
}

/// Runs a `vault` command; `on_failure` is for a restore into an unmounted store, whose job
/// runs here (a mounted store's daemon runs its own hook).
pub fn run(args: VaultArgs, on_failure: Option<&str>) -> anyhow::Result<()> {
    match args.command {
        VaultCommand::Init(args) => init_vault(args),
        VaultCommand::List(args) => list_vault(args),
        VaultCommand::Restore(args) => restore_vault(args, on_failure),
        VaultCommand::Mount(args) => super::vault_mount::run(args),
        VaultCommand::Verify(args) => verify_vault(args),
        VaultCommand::Hold(args) => {
            retention::hold(&open(&args.vault, &args.key)?, &args.backup)?;
            println!("held {}", args.backup);
            Ok(())
        }
        VaultCommand::Release(args) => {
            if retention::release(&open(&args.vault, &args.key)?, &args.backup)? {
                println!("released {}", args.backup);
            } else {
                println!("{} was not held", args.backup);
            }
            Ok(())
        }
        VaultCommand::Delete(args) => {
            let report = retention::delete(&open(&args.vault, &args.key)?, &args.backups)?;
            println!(
                "deleted {}; `snapfs vault gc {}` frees their space (at most {})",
                report.deleted.join(", "),
                args.vault,
                super::human_bytes(report.bytes_added)
            );
            Ok(())
        }
        VaultCommand::Gc(args) => gc_vault(args),
        VaultCommand::Copy(args) => copy_vault(args),
        VaultCommand::Key(command) => key_command(command),
        VaultCommand::Policy(command) => policy_command(command),
        VaultCommand::Prune(args) => prune_vault(args),
    }
}

fn policy_command(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Set(args) => {
            // Checked before the vault is opened: an unknown zone changes nothing.
            let timezone = args
                .timezone
                .as_deref()
                .map(crate::schedule::calendar::Zone::parse)
                .transpose()?;
            let vault = open_for_verify(&args.vault, &args.key)?;
            let counts = VaultPolicy {
                last: args.keep_last,
                daily: args.keep_daily,
                weekly: args.keep_weekly,
                monthly: args.keep_monthly,
                yearly: args.keep_yearly,
                min_retention_secs: 0,
                timezone: None,
            };
            let min_retention = args
                .min_retention
                .as_deref()
                .map(crate::schedule::calendar::parse_duration)
                .transpose()?;
            let policy = prune::set_policy(&vault, &counts, min_retention, timezone.as_ref())?;
            println!(
                "set the retention policy of {}{}{}",
                args.vault,
                match policy.min_retention_secs {
                    0 => String::new(),
                    secs => format!(
                        " (minimum retention {})",
                        crate::schedule::calendar::format_duration(secs)
                    ),
                },
                match &policy.timezone {
                    None => String::new(),
                    Some(zone) => format!(" (buckets in {zone})"),
                }
            );
        }
        PolicyCommand::Show(args) => {
            let vault = open_for_verify(&args.vault, &args.key)?;
            let policy = prune::policy(&vault)?;
            if args.json {
                println!("{}", serde_json::to_string(&policy)?);
                return Ok(());
            }
            match policy {
                None => println!("{} has no retention policy", args.vault),
                Some(p) => {
                    println!(
                        "keep per share: last {}, daily {}, weekly {}, monthly {}, yearly {}",
                        p.last, p.daily, p.weekly, p.monthly, p.yearly
                    );
                    println!(
                        "time zone: {} (days, weeks, months and years are its own)",
                        p.timezone.as_deref().unwrap_or("UTC")
                    );
                    if p.min_retention_secs > 0 {
                        println!(
                            "minimum retention: {} (no backup younger than that can be deleted)",
                            crate::schedule::calendar::format_duration(p.min_retention_secs)
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn prune_vault(args: PruneArgs) -> anyhow::Result<()> {
    let mut vault = open(&args.vault, &args.key)?;
    let report = prune::prune(&vault, args.dry_run)?;
    let gc_report = if args.gc && !report.removed.is_empty() {
        vault.reload_index()?;
        Some(gc::gc(&mut vault, false)?)
    } else {
        None
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "prune": report, "gc": gc_report })
        );
        return Ok(());
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for entry in &report.removed {
        println!(
            "{verb} {} ({})",
            entry.backup,
            crate::schedule::calendar::format_rfc3339(entry.created)
        );
    }
    println!(
        "{verb} {} backups, kept {}{}",
        report.removed.len(),
        report.kept.len(),
        match &gc_report {
            Some(gc) => format!(
                "; gc: packs {} -> {}",
                super::human_bytes(gc.pack_bytes_before),
                super::human_bytes(gc.pack_bytes_after)
            ),
            None if !report.dry_run && !report.removed.is_empty() => format!(
                "; `snapfs vault gc {}` frees their space (at most {})",
                args.vault,
                super::human_bytes(report.bytes_added)
            ),
            None => String::new(),
        }
    );
    Ok(())
}

fn key_command(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Add(args) => {
            let new = args.new_secret()?;
            let mut vault = open_for_verify(&args.vault, &args.key)?;
            let slot = keys::add(&mut vault, &new, crypto::DEFAULT_KDF)?;
            println!("added key slot {slot} to {}", args.vault);
        }
        KeyCommand::List(args) => {
            let vault = open_for_verify(&args.vault, &args.key)?;
            let slots = keys::list(&vault);
            if args.json {
                println!("{}", serde_json::to_string(&slots)?);
                return Ok(());
            }
            if slots.is_empty() {
                println!("{} is not encrypted: it has no key slots", args.vault);
            }
            for slot in slots {
                println!(
                    "slot {:<2} {:<10} argon2id m={} KiB t={} p={}{}",
                    slot.slot,
                    slot.kind,
                    slot.m_cost_kib,
                    slot.t_cost,
                    slot.p_cost,
                    if slot.unlocked {
                        "  (opened by this secret)"
                    } else {
                        ""
                    }
                );
            }
        }
        KeyCommand::Remove(args) => {
            let mut vault = open_for_verify(&args.vault, &args.key)?;
            keys::remove(&mut vault, args.slot)?;
            println!("removed key slot {} from {}", args.slot, args.vault);
        }
        KeyCommand::Passwd(args) => {
            let new = args.new_secret()?;
            let mut vault = open_for_verify(&args.vault, &args.key)?;
            let slot = keys::passwd(&mut vault, &new, crypto::DEFAULT_KDF)?;
            println!("changed the secret of key slot {slot} of {}", args.vault);
        }
    }
    Ok(())
}

fn verify_vault(args: VerifyArgs) -> anyhow::Result<()> {
    let mut vault = open_for_verify(&args.vault, &args.key)?;
    let report = with_progress("vault verify", args.json, |progress| {
        Ok(verify::verify(&mut vault, args.read_data, progress)?)
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for note in &report.notes {
            println!("note: {note}");
        }
        for problem in &report.problems {
            println!("PROBLEM: {problem}");
        }
        println!(
            "{} backups, {} packs, {} objects reachable, {} objects read{}",
            report.backups,
            report.packs,
            report.objects,
            report.objects_read,
            if args.read_data {
                format!(" ({} of packs)", super::human_bytes(report.pack_bytes_read))
            } else {
                String::new()
            }
        );
    }
    if !report.problems.is_empty() {
        bail!(
            "{}: {} problem{} found",
            args.vault,
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" }
        );
    }
    if !args.json {
        println!("no problems found in {}", args.vault);
    }
    Ok(())
}

fn gc_vault(args: GcArgs) -> anyhow::Result<()> {
    let mut vault = open(&args.vault, &args.key)?;
    let report = gc::gc(&mut vault, args.dry_run)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{}{} backups, {} live objects; {} packs deleted, {} rewritten ({} objects, {} moved),          {} index entries dropped; packs {} -> {}",
        if report.dry_run { "would: " } else { "" },
        report.backups,
        report.live_objects,
        report.packs_deleted,
        report.packs_rewritten,
        report.objects_moved,
        super::human_bytes(report.bytes_moved),
        report.entries_dropped,
        super::human_bytes(report.pack_bytes_before),
        super::human_bytes(report.pack_bytes_after),
    );
    Ok(())
}

fn copy_vault(args: CopyArgs) -> anyhow::Result<()> {
    let mut source = open(&args.vault, &args.key)?;
    let mut dest = Vault::open(&location(&args.other_vault)?, &args.dest_secret()?)
        .with_context(|| format!("the destination vault {}", args.other_vault))?;
    let report = with_progress("vault copy", args.json, |progress| {
        Ok(copy::copy(&mut source, &mut dest, &args.backups, progress)?)
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "copied {} backups ({} objects, {}) to {}; {} already there",
        report.copied.len(),
        report.objects_sent,
        super::human_bytes(report.bytes_added),
        args.other_vault,
        report.skipped.len()
    );
    Ok(())
}

fn init_vault(args: InitArgs) -> anyhow::Result<()> {
    let location = location(&args.vault)?;
    let encrypt = args.encrypt || (location.is_remote() && !args.no_encrypt);
    let secret = if encrypt {
        match args.key.secret()? {
            Secret::None => bail!(
                "an encrypted vault needs a passphrase in SNAPFS_PASSPHRASE or a --key-file \
                 (or --no-encrypt)"
            ),
            secret => secret,
        }
    } else {
        Secret::None
    };
    let kdf: KdfParams = crypto::DEFAULT_KDF;
    let backend = blob::open(&location)?;
    let id = init::init_with(&*backend, &secret, kdf, args.single_host)?;
    println!(
        "created {} vault {} ({id})",
        if encrypt {
            "an encrypted"
        } else {
            "an unencrypted"
        },
        location
    );
    Ok(())
}

fn list_vault(args: ListArgs) -> anyhow::Result<()> {
    let vault = open(&args.vault, &args.key)?;
    let backups = list::list(&vault)?;
    if args.json {
        println!("{}", serde_json::to_string(&backups)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<12} {:<20} {:>10} {:>10}  hold",
        "name", "share", "created", "size", "added"
    );
    for backup in backups {
        println!(
            "{:<24} {:<12} {:<20} {:>10} {:>10}  {}",
            backup.name,
            &backup.share[..12],
            crate::schedule::calendar::format_rfc3339(backup.created),
            super::human_bytes(backup.size),
            super::human_bytes(backup.bytes_added),
            backup.hold
        );
    }
    Ok(())
}

fn restore_vault(args: RestoreArgs, on_failure: Option<&str>) -> anyhow::Result<()> {
    if let Some(path) = args.path {
        return restore_into_share(
            VaultRestoreArgs {
                vault: absolute_vault(&args.vault)?,
                backup: args.backup,
                path,
                to: args.to,
                overwrite: args.overwrite,
                access: args.key.access()?,
            },
            TargetArgs {
                mount: args.mount,
                store: args.store,
            },
            on_failure,
            args.progress,
        );
    }
    let Some(new_store) = args.new_store else {
        bail!("give the new store's directory, or --path and --mount to restore into a share");
    };
    let vault = open(&args.vault, &args.key)?;
    let new_store = std::path::absolute(&new_store)?;
    let report = with_progress("vault restore", args.progress.json, |progress| {
        Ok(restore::restore(
            &vault,
            &args.backup,
            &new_store,
            progress,
        )?)
    })?;
    if args.progress.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "restored {} into a new store at {}: {} files, {} directories, {} fetched",
        args.backup,
        new_store.display(),
        report.restored.files,
        report.restored.dirs,
        super::human_bytes(report.bytes_fetched)
    );
    Ok(())
}

/// A local vault's path made absolute: the daemon may run elsewhere than here.
fn absolute_vault(vault: &str) -> anyhow::Result<String> {
    if vault.contains("://") {
        return Ok(vault.to_owned());
    }
    Ok(std::path::absolute(vault)?.display().to_string())
}

/// Restores one entry of a backup into a share: a request like `snapfs restore`'s, run by the
/// share's daemon (or here, on an unmounted store), with the vault's secret and S3 settings
/// from this command's environment.
fn restore_into_share(
    request: VaultRestoreArgs,
    target: TargetArgs,
    on_failure: Option<&str>,
    shown: ProgressArgs,
) -> anyhow::Result<()> {
    let (backup, path) = (request.backup.clone(), request.path.clone());
    let to = request.to.clone().unwrap_or_else(|| path.clone());
    let Some(report) = target
        .resolve(on_failure)?
        .execute_shown::<restore::VaultPathReport>(
            "vault restore",
            shown,
            Request::VaultRestore(request),
        )?
    else {
        return Ok(());
    };
    println!(
        "restored {path} from backup {backup} to {to}: {} files, {} directories, {} others, {} fetched",
        report.restored.files,
        report.restored.dirs,
        report.restored.others,
        super::human_bytes(report.bytes_fetched)
    );
    Ok(())
}
