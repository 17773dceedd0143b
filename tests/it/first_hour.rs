//! What a new self-hoster meets at the first start: where the database lives, the listen
//! address, the config file. Each mistake is named as what it is, and refused before hookd
//! makes any file.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn serve(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookd"));
    cmd.arg("serve")
        .args(args)
        .current_dir(dir)
        .env("HOOKD_LOG", "warn")
        .env_remove("HOOKD_CONFIG")
        .env_remove("HOOKD_DB")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run hookd")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Serving `db` fails, saying `says`.
fn refused_db(db: &Path, dir: &Path, says: &str) {
    let db = db.to_str().expect("path");
    let out = serve(&["--db", db, "--listen", "127.0.0.1:0"], &[], dir);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(says), "{}", stderr(&out));
}

#[test]
fn a_db_in_a_missing_folder_or_a_file_that_is_no_database_is_named_and_nothing_is_made() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("nope").join("hookd.db");
    refused_db(&missing, dir.path(), "for the database does not exist");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "these are my notes").expect("write");
    refused_db(&notes, dir.path(), "is not a SQLite database");
    assert_eq!(
        files_in(dir.path()),
        ["notes.txt"],
        "no lock file, no credentials key beside it"
    );
    assert_eq!(
        std::fs::read_to_string(&notes).expect("read"),
        "these are my notes"
    );
}

#[test]
fn a_listen_address_is_an_ip_and_port_or_a_name_that_resolves() {
    let dir = tempfile::tempdir().expect("dir");
    let out = serve(&["--listen", "nohost"], &[], dir.path());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("use IP:PORT, like 127.0.0.1:8081"),
        "{}",
        stderr(&out)
    );
    assert!(files_in(dir.path()).is_empty());
    // A name that resolves is taken: hookd starts and says where it listens.
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["serve", "--listen", "localhost:0", "--db"])
        .arg(dir.path().join("h.db"))
        .args(["--admin-token", "first-hour-operator-token"])
        .env("HOOKD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("read");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("hookd: listening on http://127.0.0.1:"),
        "{line}"
    );
}

#[test]
fn a_config_error_names_the_file_and_what_asked_for_it() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("my-hookd.toml");
    std::fs::write(&config, "retention = \"soon\"\n").expect("write");
    let out = serve(
        &["--config", config.to_str().expect("path")],
        &[],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("retention in {}", config.display())),
        "{}",
        stderr(&out)
    );
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().expect("path");
    let by_flag = serve(&["--config", missing], &[], dir.path());
    assert!(
        stderr(&by_flag).contains("(named by --config)"),
        "{}",
        stderr(&by_flag)
    );
    let by_env = serve(&[], &[("HOOKD_CONFIG", missing)], dir.path());
    assert!(
        stderr(&by_env).contains("(named by HOOKD_CONFIG)"),
        "{}",
        stderr(&by_env)
    );
}

#[test]
fn each_command_lists_only_the_flags_it_uses() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hookd"))
            .args(args)
            .arg("--help")
            .output()
            .expect("run hookd");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for reads in [&["check"][..], &["backup"][..]] {
        let text = help(reads);
        assert!(text.contains("--db"), "{text}");
        assert!(
            !text.contains("--durability"),
            "{reads:?} writes nothing: {text}"
        );
    }
    for writes in [&["migrate"][..], &["token", "rotate"][..], &["serve"][..]] {
        let text = help(writes);
        assert!(text.contains("--durability"), "{text}");
        assert!(
            text.contains("postgres://"),
            "{writes:?} takes a PostgreSQL URL: {text}"
        );
    }
}
