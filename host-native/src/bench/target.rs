//! Servers under test: how to start one on a free loopback port, wait until
//! it answers, read its memory, and stop it.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::Conn;

/// How to run one server under test.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// Name in the report.
    pub name: String,
    /// Whether it keeps data across restarts (the restart scenario needs it).
    pub durable: bool,
    /// The URL path streams live under, ending in `/`.
    pub base: String,
    /// How to reach it.
    pub kind: Kind,
}

/// Spawned per run, or already running.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A command line (split on spaces) with `{port}`, `{addr}` and `{dir}`
    /// placeholders; a fresh process and data directory per run.
    Spawn(Vec<String>),
    /// A server someone else started (no restart scenario).
    Attach {
        /// Its address.
        addr: SocketAddr,
        /// Its process id, for memory readings.
        pid: Option<u32>,
    },
}

impl TargetSpec {
    /// Parses `name=N;durable=true|false;base=/v1/stream/;cmd=COMMAND LINE`
    /// or `name=N;base=...;url=127.0.0.1:4437[;pid=123]`. `cmd` takes the
    /// rest of the text.
    pub fn parse(text: &str) -> Result<TargetSpec, String> {
        let (head, cmd) = match text.find("cmd=") {
            Some(i) => (&text[..i], Some(text[i + 4..].trim())),
            None => (text, None),
        };
        let mut name = None;
        let mut durable = true;
        let mut base = "/v1/stream/".to_string();
        let mut url = None;
        let mut pid = None;
        for part in head.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("target: `{part}` is not key=value"))?;
            match k {
                "name" => name = Some(v.to_string()),
                "durable" => durable = v == "true" || v == "1",
                "base" => base = v.to_string(),
                "url" => url = Some(v.trim_start_matches("http://").trim_end_matches('/')),
                "pid" => pid = Some(v.parse().map_err(|_| format!("target: bad pid {v}"))?),
                _ => return Err(format!("target: unknown key `{k}`")),
            }
        }
        if !base.ends_with('/') {
            base.push('/');
        }
        let name = name.ok_or("target: name= is required")?;
        let kind = match (cmd, url) {
            (Some(cmd), None) => Kind::Spawn(cmd.split_whitespace().map(String::from).collect()),
            (None, Some(url)) => Kind::Attach {
                addr: url
                    .parse()
                    .map_err(|_| format!("target: url must be IP:PORT, got {url}"))?,
                pid,
            },
            _ => return Err("target: give exactly one of cmd= and url=".into()),
        };
        if let Kind::Attach { addr, .. } = &kind {
            if !addr.ip().is_loopback() {
                return Err("target: only loopback addresses are benchmarked".into());
            }
        }
        Ok(TargetSpec {
            name,
            durable,
            base,
            kind,
        })
    }

    /// Whether this target can be stopped and started again.
    pub fn spawnable(&self) -> bool {
        matches!(self.kind, Kind::Spawn(_))
    }

    /// Starts the server (or attaches) with data in `dir`; waits until it
    /// answers HTTP.
    pub async fn start(&self, dir: &Path, log: &Path) -> Result<Running, String> {
        match &self.kind {
            Kind::Attach { addr, pid } => Ok(Running {
                addr: *addr,
                pid: *pid,
                child: None,
                argv: Vec::new(),
                log: log.to_path_buf(),
            }),
            Kind::Spawn(template) => {
                let port = free_port()?;
                let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
                let argv: Vec<String> = template
                    .iter()
                    .map(|a| {
                        a.replace("{port}", &port.to_string())
                            .replace("{addr}", &addr.to_string())
                            .replace("{dir}", &dir.display().to_string())
                    })
                    .collect();
                let mut running = Running {
                    addr,
                    pid: None,
                    child: None,
                    argv,
                    log: log.to_path_buf(),
                };
                running.spawn()?;
                running
                    .wait_ready(&self.base, Duration::from_secs(120))
                    .await?;
                Ok(running)
            }
        }
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A started server.
pub struct Running {
    /// Its address.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: Option<u32>,
    child: Option<Child>,
    argv: Vec<String>,
    log: PathBuf,
}

impl Running {
    /// Starts the process again with the same command line (restart).
    pub fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("log {}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.argv.join(" ")))?;
        self.pid = Some(child.id());
        self.child = Some(child);
        Ok(())
    }

    /// Whether the process has exited (and why).
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "server exited: {status}; see {}",
                self.log.display()
            )),
            _ => None,
        }
    }

    /// Waits until any HTTP answer comes back.
    pub async fn wait_ready(&mut self, base: &str, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        let probe = format!("{base}__bench_probe");
        loop {
            if let Some(e) = self.exited() {
                return Err(e);
            }
            if let Ok(mut c) = Conn::connect(self.addr).await {
                if let Ok(Ok(_)) = tokio::time::timeout(
                    Duration::from_secs(5),
                    c.request("HEAD", &probe, &[], b""),
                )
                .await
                {
                    return Ok(());
                }
            }
            if start.elapsed() > limit {
                return Err(format!("server not ready after {limit:?}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace`. Returns how
    /// long it took to exit.
    pub async fn stop(&mut self, grace: Duration) -> Duration {
        let start = Instant::now();
        let Some(mut child) = self.child.take() else {
            return Duration::ZERO;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if start.elapsed() > grace {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        start.elapsed()
    }

    /// `VmRSS` and `VmHWM` of the process in bytes (Linux), if known.
    pub fn memory(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .map(|kib| kib * 1024)
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time counters (Linux `/proc`), in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    at: Instant,
    busy_all: u64,
    server: u64,
    me: u64,
}

fn proc_ticks(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

impl CpuSnapshot {
    /// Takes a snapshot of the machine's, the server's and this process's
    /// CPU time.
    pub fn take(server: Option<u32>) -> CpuSnapshot {
        let busy_all = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().next()?.to_string();
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal
                Some(
                    v.iter()
                        .take(8)
                        .enumerate()
                        .filter(|(i, _)| *i != 3 && *i != 4)
                        .map(|(_, x)| x)
                        .sum(),
                )
            })
            .unwrap_or(0);
        CpuSnapshot {
            at: Instant::now(),
            busy_all,
            server: server.map_or(0, |p| proc_ticks(&p.to_string())),
            me: proc_ticks("self"),
        }
    }

    /// CPU use since `self`, in cores: (server, load generator, everything
    /// else on the machine), and the seconds it covers. Clock ticks are
    /// 1/100 s on Linux.
    pub fn since(&self, server: Option<u32>) -> (f64, f64, f64, f64) {
        let now = CpuSnapshot::take(server);
        let secs = now.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / 100.0 / secs;
        let server = d(now.server, self.server);
        let me = d(now.me, self.me);
        let all = d(now.busy_all, self.busy_all);
        (server, me, (all - server - me).max(0.0), secs)
    }
}
