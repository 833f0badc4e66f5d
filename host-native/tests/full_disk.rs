//! A full disk: the server runs on a small tmpfs. Writes that do not fit get
//! 507 with a problem+json body and lose nothing acknowledged; reads keep
//! working; once space returns, writing resumes without a restart.
//!
//! Mounting needs root (CI and these machines run as root); elsewhere the
//! test says so and does nothing.

mod support;

use std::process::Command;

use support::{read_all, request, Server};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn full_disk_gives_507_keeps_reads_and_recovers() {
    if !is_root() {
        eprintln!("full_disk: not root, cannot mount a small tmpfs; nothing tested");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mounting a tmpfs as root failed");
    let _mount = Mount(dir.path().to_path_buf());
    // Space we can give back later.
    let filler = dir.path().join("filler");
    std::fs::write(&filler, vec![0u8; 2 << 20]).unwrap();

    let server = Server::start(&dir.path().join("data"), &[]);
    let addr = server.addr;
    let ct = [("content-type", "application/octet-stream")];
    assert_eq!(
        request(addr, "PUT", "/v1/stream/big", &ct, b"")
            .unwrap()
            .status,
        201
    );

    let chunk: Vec<u8> = (0..256 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let mut acked = Vec::new();
    let mut full = None;
    for _ in 0..64 {
        let r = request(addr, "POST", "/v1/stream/big", &ct, &chunk).unwrap();
        match r.status {
            204 => acked.extend_from_slice(&chunk),
            _ => {
                full = Some(r);
                break;
            }
        }
    }
    let full = full.expect("8 MiB of tmpfs must fill up");
    assert_eq!(full.status, 507, "a full disk is 507 Insufficient Storage");
    assert_eq!(
        full.header("content-type"),
        Some("application/problem+json")
    );
    assert!(String::from_utf8_lossy(&full.body).contains("storage-full"));
    assert!(
        acked.len() >= 4 * chunk.len(),
        "some appends fit before the disk filled"
    );

    // Reads keep working and show exactly what was acknowledged.
    assert_eq!(read_all(addr, "/v1/stream/big"), acked);
    let head = request(addr, "HEAD", "/v1/stream/big", &[], b"").unwrap();
    assert_eq!(head.status, 200);

    // Space returns: writing resumes on the same process.
    std::fs::remove_file(&filler).unwrap();
    let r = request(addr, "POST", "/v1/stream/big", &ct, &chunk).unwrap();
    assert_eq!(r.status, 204, "writes resume once space returns");
    acked.extend_from_slice(&chunk);
    assert_eq!(read_all(addr, "/v1/stream/big"), acked);

    // And everything acknowledged survives a restart.
    server.kill();
    let server = Server::start(&dir.path().join("data"), &[]);
    assert_eq!(read_all(server.addr, "/v1/stream/big"), acked);
}
