//! Every field `--json` prints is documented in `docs/JSON.md`, and every top-level field the
//! document lists is printed: the outputs scripts read stay what the document says, on a real
//! mount with snapshots, a vault with a backup, and a tiered store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::harness::Mounted;
use crate::vault::ok_env;

/// The documented field paths of each section of `docs/JSON.md`, by its heading.
pub(crate) fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/JSON.md"))
        .expect("docs/JSON.md");
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            current = Some(heading.to_owned());
            sections.entry(heading.to_owned()).or_default();
            continue;
        }
        let (Some(section), Some(row)) = (&current, line.strip_prefix("| `")) else {
            continue;
        };
        let cell = row.split(" |").next().expect("a cell");
        let tokens: Vec<&str> = cell
            .split('`')
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != ",")
            .collect();
        let first = tokens[0];
        // `a.b.c`, `.d` names `a.b.d`.
        let parent = first.rsplit_once('.').map_or("", |(parent, _)| parent);
        let fields = sections.get_mut(section).expect("section");
        for token in tokens {
            fields.insert(match token.strip_prefix('.') {
                Some(last) => format!("{parent}.{last}"),
                None => token.to_owned(),
            });
        }
    }
    sections
}

/// The paths of a JSON value's leaves (`null` included) and of its empty arrays.
fn paths(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut pending = vec![(String::new(), value)];
    while let Some((path, value)) = pending.pop() {
        let join = |key: &str| {
            if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            }
        };
        match value {
            Value::Object(fields) => {
                for (key, field) in fields {
                    pending.push((join(key), field));
                }
            }
            Value::Array(items) => {
                let element = format!("{path}[]");
                if items.is_empty() {
                    out.insert(element.clone());
                }
                for item in items {
                    pending.push((element.clone(), item));
                }
            }
            _ => {
                out.insert(path);
            }
        }
    }
    out
}

/// Checks one command's output against its section.
pub(crate) fn check(sections: &BTreeMap<String, BTreeSet<String>>, heading: &str, output: &str) {
    let documented = sections
        .get(heading)
        .unwrap_or_else(|| panic!("docs/JSON.md has no section {heading}"));
    let value: Value = serde_json::from_str(output).expect("JSON");
    // The status embeds the policy report: its fields are the policy section's.
    let documented: BTreeSet<String> = if heading == "`snapfs status --json`" {
        let policy = &sections["`snapfs policy show --json` (and `policy set --json`)"];
        documented
            .iter()
            .cloned()
            .chain(policy.iter().map(|field| format!("policy.{field}")))
            .collect()
    } else {
        documented.clone()
    };
    let undocumented: Vec<String> = paths(&value)
        .into_iter()
        .filter(|path| !documented.contains(path))
        .collect();
    assert!(
        undocumented.is_empty(),
        "{heading} prints fields docs/JSON.md does not list: {undocumented:?}"
    );
    if let Value::Object(fields) = &value {
        let printed: BTreeSet<&str> = fields.keys().map(String::as_str).collect();
        let top: BTreeSet<&str> = documented
            .iter()
            .map(|path| path.split(['.', '[']).next().expect("a segment"))
            .collect();
        assert_eq!(printed, top, "{heading}: top-level fields");
    }
}

#[test]
fn every_json_field_is_documented_and_every_documented_one_printed() {
    let sections = documented();
    let vault_dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let vault = vault_dir.path().join("vault");
    let vault = vault.to_str().expect("utf-8");
    let env = [("SNAPFS_PASSPHRASE", "a passphrase for the test".to_owned())];
    ok_env(&["vault", "init", vault, "--encrypt"], &env);

    let m = Mounted::new();
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    std::fs::create_dir(m.path("docs")).expect("mkdir");
    std::fs::write(m.path("docs/a"), b"first").expect("write");
    ok_env(&["snapshot", "create", "one", "--mount", &mnt], &env);
    std::fs::write(m.path("docs/a"), b"second, longer").expect("write");
    std::fs::write(m.path("docs/b"), b"new").expect("write");
    ok_env(&["snapshot", "create", "two", "--mount", &mnt], &env);
    ok_env(&["snapshot", "hold", "one", "--mount", &mnt], &env);
    ok_env(
        &[
            "policy",
            "set",
            "--mount",
            &mnt,
            "--daily-at",
            "02:00",
            "--keep-daily",
            "3",
            "--backup-to",
            vault,
            "--backup-daily-at",
            "03:00",
        ],
        &env,
    );
    ok_env(&["backup", "one", "--to", vault, "--mount", &mnt], &env);
    ok_env(
        &["vault", "policy", "set", vault, "--keep-daily", "7"],
        &env,
    );

    let json = |args: &[&str]| ok_env(args, &env);
    check(
        &sections,
        "`snapfs status --json`",
        &json(&["status", "--mount", &mnt, "--json"]),
    );
    check(
        &sections,
        "`snapfs report --json`",
        &json(&["report", "--mount", &mnt, "--json"]),
    );
    check(
        &sections,
        "`snapfs policy show --json` (and `policy set --json`)",
        &json(&["policy", "show", "--mount", &mnt, "--json"]),
    );
    check(
        &sections,
        "`snapfs snapshot list --json` (and `--deleted`)",
        &json(&["snapshot", "list", "--mount", &mnt, "--json"]),
    );
    check(
        &sections,
        "`snapfs diff OLD NEW --json`",
        &json(&["diff", "one", "two", "--mount", &mnt, "--json"]),
    );
    check(
        &sections,
        "`snapfs log PATH --json`",
        &json(&["log", "docs/a", "--mount", &mnt, "--json"]),
    );
    check(
        &sections,
        "`snapfs vault list VAULT --json`",
        &json(&["vault", "list", vault, "--json"]),
    );
    check(
        &sections,
        "`snapfs vault policy show VAULT --json`",
        &json(&["vault", "policy", "show", vault, "--json"]),
    );
    check(
        &sections,
        "`snapfs vault key list VAULT --json`",
        &json(&["vault", "key", "list", vault, "--json"]),
    );

    // A store tiered to a directory, with a checkpoint and a pin.
    let remote = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let share = remote.path().join("share");
    let tiered = Mounted::new_with(&["--tier", share.to_str().expect("utf-8")], &[]);
    std::fs::create_dir(tiered.path("kept")).expect("mkdir");
    let tmnt = tiered.mnt.to_str().expect("utf-8").to_owned();
    ok_env(
        &["tier", "pin", tiered.path("kept").to_str().expect("utf-8")],
        &[],
    );
    crate::tier::wait_until_checkpointed(&tiered, &[], 0);
    check(
        &sections,
        "`snapfs tier status --json`",
        &json(&["tier", "status", "--mount", &tmnt, "--json"]),
    );
}
