//! The blob layer against a real S3 server (SeaweedFS): the same behaviour as a local
//! directory, create-only writes really enforced (and found so by the probe `vault init`
//! runs), and a vanished server reported as unreachable rather than as a missing object.

use std::time::Duration;

use snapfs::blob::{BlobBackend, BlobError, BlobKey, RemoteStore, S3Settings};

use crate::s3_server::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};

fn settings(server: &S3Server, retry_timeout: Duration) -> S3Settings {
    S3Settings {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        region: "us-east-1".into(),
        endpoint: Some(server.endpoint()),
        retry_timeout,
    }
}

#[test]
fn an_s3_bucket_behaves_as_a_blob_backend() {
    let server = S3Server::start();
    let backend = RemoteStore::s3(
        BUCKET,
        "conformance/vault",
        Some(&settings(&server, Duration::from_secs(10))),
    )
    .expect("open");
    snapfs::blob::conformance::check(&backend);
    assert!(backend.enforces_create_only());
    let other = RemoteStore::s3(
        BUCKET,
        "conformance",
        Some(&settings(&server, Duration::from_secs(10))),
    )
    .expect("open");
    assert_eq!(
        other.list("vault").expect("list").len(),
        2,
        "keys are relative to the prefix"
    );
}

#[test]
fn wrong_credentials_and_a_stopped_server_are_errors_not_missing_objects() {
    let mut server = S3Server::start();
    let key = BlobKey::new("k").expect("key");
    let mut wrong = settings(&server, Duration::from_secs(1));
    wrong.secret_access_key = "not-the-secret".into();
    let backend = RemoteStore::s3(BUCKET, "v", Some(&wrong)).expect("open");
    let err = backend.get(&key).expect_err("refused");
    assert!(!matches!(err, BlobError::NotFound(_)), "{err}");

    let backend = RemoteStore::s3(
        BUCKET,
        "v",
        Some(&settings(&server, Duration::from_secs(1))),
    )
    .expect("open");
    backend.put(&key, b"there").expect("put");
    server.stop();
    let err = backend.get(&key).expect_err("server gone");
    assert!(matches!(err, BlobError::Unreachable { .. }), "{err}");
}

/// SeaweedFS really refuses a second create-only put, so the probe `vault init` runs says so,
/// init needs no `--single-host`, and no probe object is left behind.
#[test]
fn vault_init_probes_conditional_writes_and_seaweedfs_enforces_them() {
    let server = S3Server::start();
    let backend = RemoteStore::s3(
        BUCKET,
        "probed",
        Some(&settings(&server, Duration::from_secs(10))),
    )
    .expect("open");
    assert!(snapfs::blob::probe::enforces_create_only(&backend).expect("probe"));
    assert!(
        backend.list("").expect("list").is_empty(),
        "the probe is gone"
    );
    let vault = server.url("probed");
    crate::vault::ok_env(&["vault", "init", &vault, "--no-encrypt"], &server.env());
    let keys: Vec<String> = backend
        .list("")
        .expect("list")
        .into_iter()
        .map(|meta| meta.key.as_str().to_owned())
        .collect();
    assert_eq!(keys, ["config"], "only the config, no probe");
}
