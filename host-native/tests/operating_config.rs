//! Configuration from the outside: flags > environment > TOML file >
//! defaults, shown by `--print-config`; invalid values stop the server with
//! exit code 2 and a message naming the setting; `--help` lists everything.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::Server;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_durable-streams-server"));
    cmd.args(args);
    // Start from a clean slate: no DS_* from the caller's environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("DS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn effective(args: &[&str], env: &[(&str, &str)]) -> toml::Table {
    let o = run(args, env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().parse().unwrap()
}

fn fails(args: &[&str], env: &[(&str, &str)], names: &[&str]) {
    let o = run(args, env);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for n in names {
        assert!(err.contains(n), "{n:?} not named in: {err}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn flags_over_env_over_file_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "ds.toml",
        r#"
bind = "127.0.0.1:1111"
long_poll_timeout_ms = 1234
[log]
format = "json"
[limits]
max_streams = 7
max_live_readers = 70
"#,
    );
    let env = [
        ("DS_CONFIG", file.as_str()),
        ("DS_MAX_STREAMS", "8"),
        ("DS_LONG_POLL_TIMEOUT_MS", "2222"),
    ];
    for args in [
        &["--print-config", "--max-streams", "9"][..],
        &["serve", "--print-config", "--max-streams", "9"][..],
    ] {
        let c = effective(args, &env);
        let limits = c["limits"].as_table().unwrap();
        assert_eq!(limits["max_streams"].as_integer(), Some(9), "flag wins");
        assert_eq!(
            c["long_poll_timeout_ms"].as_integer(),
            Some(2222),
            "env beats file"
        );
        assert_eq!(
            c["bind"].as_str(),
            Some("127.0.0.1:1111"),
            "file beats default"
        );
        assert_eq!(limits["max_live_readers"].as_integer(), Some(70));
        assert_eq!(c["log"]["format"].as_str(), Some("json"));
        assert_eq!(c["max_chunk_bytes"].as_integer(), Some(1 << 20), "default");
        assert_eq!(
            c["max_streamed_read_bytes"].as_integer(),
            Some(16 << 20),
            "default"
        );
        assert_eq!(
            limits["max_pending_writes"].as_integer(),
            Some(1024),
            "default"
        );
        assert_eq!(c["scheduling"].as_str(), Some("auto"), "default");
    }
    let file = write(dir.path(), "normal.toml", "scheduling = \"normal\"\n");
    let c = effective(&["--print-config", "--config", &file], &[]);
    assert_eq!(c["scheduling"].as_str(), Some("normal"), "from the file");
    let c = effective(
        &["--print-config", "--config", &file, "--scheduling", "batch"],
        &[],
    );
    assert_eq!(c["scheduling"].as_str(), Some("batch"), "flag beats file");
    let c = effective(&["--print-config"], &[("DS_SCHEDULING", "normal")]);
    assert_eq!(c["scheduling"].as_str(), Some("normal"), "from the env");
}

#[test]
fn secrets_are_redacted_and_auth_tokens_come_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "ds.toml",
        r#"
[auth]
hs256_secret = "a-very-secret-value-that-is-32-bytes-long"
[[auth.tokens]]
token = "tenant-a-read-token"
permissions = ["read"]
prefixes = ["tenant-a/"]
"#,
    );
    let o = run(&["--print-config", "--config", &file], &[]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.contains("a-very-secret"), "{text}");
    assert!(!text.contains("tenant-a-read-token"), "{text}");
    let c: toml::Table = text.parse().unwrap();
    assert_eq!(
        c["auth"]["tokens"][0]["prefixes"][0].as_str(),
        Some("tenant-a/")
    );
}

#[test]
fn invalid_values_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        &["--max-body-bytes", "lots"],
        &[],
        &["--max-body-bytes", "lots"],
    );
    fails(&[], &[("DS_MAX_STREAMS", "-1")], &["--max-streams"]);
    fails(&[], &[("DS_BIND", "nowhere")], &["--bind"]);
    fails(&["--log-format", "xml"], &[], &["--log-format"]);
    fails(&["--scheduling", "fifo"], &[], &["--scheduling", "fifo"]);
    let typed = write(
        dir.path(),
        "typed.toml",
        "[limits]\nmax_streams = \"many\"\n",
    );
    fails(&["--config", &typed], &[], &["typed.toml", "max_streams"]);
    let unknown = write(dir.path(), "unknown.toml", "[limits]\nmax_stream = 1\n");
    fails(&["--config", &unknown], &[], &["max_stream"]);
    fails(
        &["--config", "/nonexistent/ds.toml"],
        &[],
        &["config file", "/nonexistent/ds.toml"],
    );
    fails(&["--tls-cert", "cert.pem"], &[], &["tls.cert", "tls.key"]);
    fails(&["--log-level", "info,=="], &[], &["log.level"]);
    fails(&["--max-header-bytes", "100"], &[], &["max_header_bytes"]);
    let bad_token = write(
        dir.path(),
        "token.toml",
        "[[auth.tokens]]\ntoken = \"long-enough-token\"\npermissions = [\"delete\"]\nprefixes = [\"\"]\n",
    );
    fails(
        &["--config", &bad_token],
        &[],
        &["auth.tokens[0].permissions", "delete"],
    );
    // Problems found while starting (unreadable files) exit 2 too.
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    fails(
        &[
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--auth-jwks-file",
            "/nonexistent/jwks.json",
        ],
        &[],
        &["auth.jwks_file"],
    );
    fails(
        &[
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--tls-cert",
            "/nonexistent/c.pem",
            "--tls-key",
            "/nonexistent/k.pem",
        ],
        &[],
        &["tls.cert", "/nonexistent/c.pem"],
    );
}

#[test]
fn help_lists_every_setting_and_subcommand() {
    let o = run(&["--help"], &[]);
    let help = String::from_utf8(o.stdout).unwrap();
    for needle in [
        "--config",
        "--bind",
        "--data-dir",
        "--memory",
        "--h2c",
        "--tls-cert",
        "--tls-key",
        "--log-format",
        "--log-level",
        "--auth-jwks-file",
        "--auth-hs256-secret-file",
        "--max-stream-bytes",
        "--max-streams",
        "--max-total-bytes",
        "--max-live-readers",
        "--max-live-readers-per-stream",
        "--rate-limit-per-second",
        "--max-pending-writes",
        "--max-connections",
        "--max-header-bytes",
        "--header-timeout-ms",
        "--scheduling",
        "DS_MAX_STREAMS",
        "export",
        "import",
        "list",
        "inspect",
        "serve",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

/// A thread's name and scheduling policy from its `stat` file (field 41);
/// `None` once the thread has exited.
#[cfg(target_os = "linux")]
fn policy(stat: &Path) -> Option<(String, i32)> {
    let stat = std::fs::read_to_string(stat).ok()?;
    // The name is in parentheses and may hold spaces: count fields after it.
    let (head, tail) = stat.rsplit_once(')').unwrap();
    let name = head.split_once('(').unwrap().1.to_string();
    Some((
        name,
        tail.split_whitespace().nth(38).unwrap().parse().unwrap(),
    ))
}

/// The policy of each thread of a running process, by thread name (a
/// thread that exits while they are read, such as an idle blocking-pool
/// thread, is left out).
#[cfg(target_os = "linux")]
fn thread_policies(pid: u32) -> Vec<(String, i32)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| policy(&task.ok()?.path().join("stat")))
        .collect()
}

#[test]
#[cfg(target_os = "linux")]
fn every_thread_of_the_server_runs_with_the_configured_policy() {
    const SCHED_BATCH: i32 = 3;
    // `normal` leaves the policy the server was started with: this test's.
    let (_, started_with) = policy(Path::new("/proc/self/stat")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // (extra flags, every thread batch?) — `auto`, the default, is batch
    // with durable storage and normal in memory mode.
    let cases: [(&[&str], bool); 4] = [
        (&[], true),
        (&["--memory"], false),
        (&["--memory", "--scheduling", "batch"], true),
        (&["--scheduling", "normal"], false),
    ];
    for (extra, batch) in cases {
        let server = Server::start(dir.path(), extra);
        let threads = thread_policies(server.child.id());
        assert!(
            threads.iter().any(|(n, _)| n == "tokio-rt-worker"),
            "{threads:?}"
        );
        for (name, policy) in threads {
            // The group-commit thread is a batch thread under any setting.
            let want = if batch || name == "group-commit" {
                SCHED_BATCH
            } else {
                started_with
            };
            assert_eq!(policy, want, "thread {name} with {extra:?}");
        }
    }
}
