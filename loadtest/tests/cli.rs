//! The `loadtest` binary's exit codes and messages, without a server: a bad flag is exit 2
//! naming the flag; a target that cannot be reached is exit 3 naming the address.

use std::process::Command;

fn loadtest(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .env_remove("INVENTORY_ADDR")
        .env_remove("INVENTORY_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_flag_is_exit_2_naming_it() {
    let (code, err) = loadtest(&["--rate", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--rate"), "{err}");
    let (code, err) = loadtest(&["--addr", "http://192.0.2.1:50051"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--addr"), "{err}");
}

#[test]
fn an_unreachable_target_is_exit_3() {
    // A port nothing listens on: bind one, then drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("http://127.0.0.1:{port}");
    let (code, err) = loadtest(&[
        "--quiet",
        "--addr",
        &addr,
        "--duration",
        "1",
        "--timeout-ms",
        "2000",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}
