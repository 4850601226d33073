//! `snapfs vault ...`: create a vault, list its backups, restore one into a new store. These
//! act on the vault alone (and, for restore, a new store this process creates), so they run
//! here, not through a daemon.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::blob::{self, BlobLocation};
use crate::format::vault_config::KdfParams;
use crate::service::request::{S3Access, VaultAccess};
use crate::vault::{Secret, Vault, crypto, init, list, restore};

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
    /// Make a new store whose live share is a backup.
    Restore(RestoreArgs),
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
            Secret::KeyFile(bytes) => {
                access.key_hex = Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
            }
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

#[derive(Args, Debug)]
pub struct RestoreArgs {
    pub vault: String,
    /// The backup: a snapshot name, or SHARE/NAME.
    pub backup: String,
    /// The directory of the new store (absent or empty).
    pub new_store: PathBuf,
    #[command(flatten)]
    pub key: KeyArgs,
}

fn location(text: &str) -> anyhow::Result<BlobLocation> {
    Ok(BlobLocation::parse(text)?)
}

fn open(vault: &str, key: &KeyArgs) -> anyhow::Result<Vault> {
    Ok(Vault::open(&location(vault)?, &key.secret()?)?)
}

pub fn run(args: VaultArgs) -> anyhow::Result<()> {
    match args.command {
        VaultCommand::Init(args) => init_vault(args),
        VaultCommand::List(args) => list_vault(args),
        VaultCommand::Restore(args) => restore_vault(args),
    }
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
    let id = init::init(&*backend, &secret, kdf)?;
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

fn restore_vault(args: RestoreArgs) -> anyhow::Result<()> {
    let vault = open(&args.vault, &args.key)?;
    let new_store = std::path::absolute(&args.new_store)?;
    let report = restore::restore(&vault, &args.backup, &new_store)?;
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
