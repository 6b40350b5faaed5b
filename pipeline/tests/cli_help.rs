//! The binary starts and documents its commands. (Having an integration test here also makes
//! `cargo test` build the `selfinstruct` binary that the end-to-end tests in `tests/` drive.)

use std::process::Command;

#[test]
fn help_lists_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_selfinstruct"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["dedup", "rouge", "seeds", "init", "round"] {
        assert!(text.contains(command), "--help lacks {command}:\n{text}");
    }
}

#[test]
fn unknown_flag_is_a_usage_error_with_exit_code_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_selfinstruct"))
        .args(["dedup", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
