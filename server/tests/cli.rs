//! `inventoryd`'s command line: precedence of flags, environment and file; hash-token; bad
//! configuration exits 2 naming the setting.

mod common;

use std::process::Command;

use common::BIN;

fn inventoryd(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("INVENTORY_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn flags_over_env_over_file_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1111\"\nmetrics_listen = \"127.0.0.1:2222\"\n[engine]\nshards = 3\nsync = \"none\"\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let (code, out, err) = inventoryd(
        &[
            "--config",
            &file,
            "--listen",
            "127.0.0.1:3333",
            "print-config",
        ],
        &[
            ("INVENTORY_LISTEN", "127.0.0.1:4444"),
            ("INVENTORY_SHARDS", "5"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let config: toml::Value = toml::from_str(&out).unwrap();
    assert_eq!(
        config["listen"].as_str(),
        Some("127.0.0.1:3333"),
        "flag wins"
    );
    assert_eq!(
        config["metrics_listen"].as_str(),
        Some("127.0.0.1:2222"),
        "file over default"
    );
    assert_eq!(
        config["engine"]["shards"].as_integer(),
        Some(5),
        "env over file"
    );
    assert_eq!(config["engine"]["sync"].as_str(), Some("none"));
    assert_eq!(config["data_dir"].as_str(), Some("./data"), "default");
    assert!(config["roles"]["storefront"]["rpcs"].as_array().is_some());
}

#[test]
fn bad_configuration_exits_2_naming_the_setting() {
    let (code, _, err) = inventoryd(&["print-config"], &[("INVENTORY_RECOVERY", "maybe")]);
    assert_eq!(code, 2);
    assert!(err.contains("engine.recovery"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[limits]\nmax_conections = 5\n").unwrap();
    let (code, _, err) = inventoryd(&["--config", &file.display().to_string()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("max_conections"), "{err}");
    let (code, _, err) = inventoryd(&["print-config"], &[("INVENTORY_SNAPSHOT_KEEP", "1")]);
    assert_eq!(code, 2);
    assert!(err.contains("engine.snapshot_keep"), "{err}");
}

#[test]
fn snapshot_settings_from_file_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[engine]\nsnapshot_keep = 4\nsnapshot_every_seconds = 60\n",
    )
    .unwrap();
    let (code, out, err) = inventoryd(
        &["--config", &file.display().to_string(), "print-config"],
        &[("INVENTORY_SNAPSHOT_EVERY_RECORDS", "5000")],
    );
    assert_eq!(code, 0, "{err}");
    let config: toml::Value = toml::from_str(&out).unwrap();
    let engine = &config["engine"];
    assert_eq!(engine["snapshot_keep"].as_integer(), Some(4));
    assert_eq!(engine["snapshot_every_seconds"].as_integer(), Some(60));
    assert_eq!(engine["snapshot_every_records"].as_integer(), Some(5000));
    assert_eq!(
        engine["consumer_wal_retained_bytes_max"].as_integer(),
        Some(8 << 30),
        "default"
    );
}

#[test]
fn hash_token_prints_the_sha256() {
    let (code, out, _) = inventoryd(&["hash-token", "test"], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
}
