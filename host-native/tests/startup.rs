//! Startup failures are clear and distinct: a data directory held by another
//! server, a layout the binary does not read, an unreadable shard, a taken
//! port. Each prints one line naming the problem and exits with its own code.

mod support;

use std::process::{Command, Output};

use support::Server;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .args(args)
        .output()
        .expect("run the binary")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn data_dir_in_use_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let running = Server::start(dir.path(), &[]);
    let o = run(&[
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already open by another process"),
        "{}",
        stderr(&o)
    );
    drop(running);
}

#[test]
fn layout_mismatch_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    Server::start(dir.path(), &[]).kill();
    let manifest = dir.path().join("layout.json");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("\"format_version\": 3", "\"format_version\": 99");
    std::fs::write(&manifest, text).unwrap();
    let o = run(&[
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("layout.json") && stderr(&o).contains("99"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unreadable_shard_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    Server::start(dir.path(), &[]).kill();
    std::fs::write(dir.path().join("shard-000.redb"), vec![0xa5u8; 8192]).unwrap();
    let o = run(&[
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("shard-000.redb"), "{}", stderr(&o));
}

#[test]
fn taken_port_exits_6() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let running = Server::start(dir.path(), &[]);
    let addr = running.addr.to_string();
    let o = run(&[
        "--bind",
        &addr,
        "--data-dir",
        other.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot listen on"), "{}", stderr(&o));
}
