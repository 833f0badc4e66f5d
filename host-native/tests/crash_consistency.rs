//! Crash consistency of the native store (issue: "acknowledged means
//! durable"), in two set-ups: the redb file shards alone, and the
//! write-ahead log in front of them (the server's store, with tiny log
//! segments so that rotation, checkpoints into redb and segment recycling
//! all happen inside the workload). Every shard, log segment and the log's
//! directory run on a simulated disk that "loses power" at the N-th sync
//! across all of them: everything written since the last completed sync is
//! lost (file contents, and file creations, renames and removals since the
//! directory's last sync) and every later I/O fails. For every N reached by a mixed
//! workload (appends, JSON, producers, closes, forks, deletes, committed in
//! groups), the disks are "rebooted" and reopened, and:
//! - every acknowledged operation survived;
//! - per stream, the in-doubt group (staged when power failed) is either
//!   wholly present or wholly absent: no partial commit is visible;
//! - retrying the in-doubt producer appends is deduplicated: each one's data
//!   ends up in the stream exactly once.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ds_core::{Config, Engine, Method, Outcome, Request, Response, Store, UnixMillis};
use durable_streams_server::redb_shards::{Opener, RedbShards};
use durable_streams_server::wal::medium::{LogMedium, LogRead, LogSegment};
use durable_streams_server::wal::{LogOptions, LoggedStore};

type DynStore = Arc<dyn Store + Send + Sync>;

const SHARDS: usize = 3;

#[derive(Debug, Default)]
struct Disk {
    durable: Mutex<Vec<u8>>,
    volatile: Mutex<Vec<u8>>,
}

#[derive(Debug)]
struct Power {
    syncs: AtomicUsize,
    fail_at: AtomicUsize,
    dead: AtomicBool,
}

impl Power {
    /// Fails every I/O once the power is gone.
    fn alive(&self) -> io::Result<()> {
        if self.dead.load(Ordering::SeqCst) {
            Err(io::Error::other("power lost"))
        } else {
            Ok(())
        }
    }

    fn on() -> Arc<Power> {
        Arc::new(Power {
            syncs: AtomicUsize::new(0),
            fail_at: AtomicUsize::new(usize::MAX),
            dead: AtomicBool::new(false),
        })
    }
}

#[derive(Debug)]
struct CrashBackend {
    disk: Arc<Disk>,
    power: Arc<Power>,
}

impl CrashBackend {
    fn alive(&self) -> io::Result<()> {
        self.power.alive()
    }
}

impl redb::StorageBackend for CrashBackend {
    fn len(&self) -> io::Result<u64> {
        self.alive()?;
        Ok(self.disk.volatile.lock().unwrap().len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.alive()?;
        let v = self.disk.volatile.lock().unwrap();
        let start = offset as usize;
        let end = start + out.len();
        if end > v.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past end",
            ));
        }
        out.copy_from_slice(&v[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.alive()?;
        self.disk.volatile.lock().unwrap().resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        sync_point(&self.power)?;
        let v = self.disk.volatile.lock().unwrap().clone();
        *self.disk.durable.lock().unwrap() = v;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.alive()?;
        let mut v = self.disk.volatile.lock().unwrap();
        let end = offset as usize + data.len();
        if end > v.len() {
            v.resize(end, 0);
        }
        v[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
}

/// Which store is under test.
#[derive(Clone, Copy, Debug)]
enum Setup {
    Redb,
    Logged,
}

/// Everything the store keeps: the shards' disks and the log's directory.
struct Disks {
    shards: Vec<Arc<Disk>>,
    log: Arc<LogDir>,
}

impl Disks {
    fn fresh() -> Disks {
        Disks {
            shards: (0..SHARDS).map(|_| Arc::new(Disk::default())).collect(),
            log: Arc::new(LogDir::default()),
        }
    }

    /// After a power cut: what survived becomes the whole content.
    fn reboot(&self) -> Disks {
        Disks {
            shards: reboot(&self.shards),
            log: Arc::new(self.log.reboot()),
        }
    }
}

fn open_engine(
    setup: Setup,
    disks: &Disks,
    power: &Arc<Power>,
) -> Result<Engine<DynStore>, String> {
    let openers: Vec<(String, Opener)> = disks
        .shards
        .iter()
        .enumerate()
        .map(|(i, disk)| {
            let (disk, power) = (Arc::clone(disk), Arc::clone(power));
            let opener = RedbShards::backend_opener(move || CrashBackend {
                disk: Arc::clone(&disk),
                power: Arc::clone(&power),
            });
            (format!("shard {i}"), opener)
        })
        .collect();
    let shards = RedbShards::from_openers(openers).map_err(|e| e.to_string())?;
    let store: DynStore = match setup {
        Setup::Redb => Arc::new(shards),
        Setup::Logged => {
            let medium = CrashLog {
                dir: Arc::clone(&disks.log),
                power: Arc::clone(power),
            };
            let options = LogOptions {
                segment_bytes: 200,
                background: false,
                ..LogOptions::default()
            };
            Arc::new(
                LoggedStore::with_medium(Arc::new(shards), Box::new(medium), options)
                    .map_err(|e| e.to_string())?,
            )
        }
    };
    Engine::open(store, Config::default(), UnixMillis(1_800_000_000_000), 7)
        .map_err(|e| e.to_string())
}

/// The log's directory on the simulated disk: file names and their disks,
/// as the directory was last synced (durable) and as it is now (volatile).
#[derive(Debug, Default)]
struct LogDir {
    durable: Mutex<BTreeMap<String, Arc<Disk>>>,
    volatile: Mutex<BTreeMap<String, Arc<Disk>>>,
}

impl LogDir {
    fn reboot(&self) -> LogDir {
        let files: BTreeMap<String, Arc<Disk>> = self
            .durable
            .lock()
            .unwrap()
            .iter()
            .map(|(name, d)| {
                let durable = d.durable.lock().unwrap().clone();
                let disk = Arc::new(Disk {
                    durable: Mutex::new(durable.clone()),
                    volatile: Mutex::new(durable),
                });
                (name.clone(), disk)
            })
            .collect();
        LogDir {
            durable: Mutex::new(files.clone()),
            volatile: Mutex::new(files),
        }
    }
}

struct CrashLog {
    dir: Arc<LogDir>,
    power: Arc<Power>,
}

impl CrashLog {
    fn alive(&self) -> io::Result<()> {
        self.power.alive()
    }

    fn sync_dir(&self) -> io::Result<()> {
        sync_point(&self.power)?;
        let now = self.dir.volatile.lock().unwrap().clone();
        *self.dir.durable.lock().unwrap() = now;
        Ok(())
    }
}

/// One sync: counts it, and fails it (killing the power) at the chosen one.
fn sync_point(power: &Power) -> io::Result<()> {
    power.alive()?;
    let n = power.syncs.fetch_add(1, Ordering::SeqCst) + 1;
    if n >= power.fail_at.load(Ordering::SeqCst) {
        power.dead.store(true, Ordering::SeqCst);
        return Err(io::Error::other("power lost during sync"));
    }
    Ok(())
}

fn seg_name(n: u64) -> String {
    format!("{n:016}.log")
}

impl LogMedium for CrashLog {
    fn segments(&self) -> io::Result<Vec<u64>> {
        self.alive()?;
        let dir = self.dir.volatile.lock().unwrap();
        Ok(dir
            .keys()
            .filter_map(|k| k.strip_suffix(".log")?.parse().ok())
            .collect())
    }

    fn open_read(&self, n: u64) -> io::Result<Arc<dyn LogRead>> {
        self.alive()?;
        let dir = self.dir.volatile.lock().unwrap();
        let disk = dir.get(&seg_name(n)).ok_or(io::ErrorKind::NotFound)?;
        Ok(Arc::new(DiskReader(Arc::clone(disk))))
    }

    fn has_spare(&self) -> bool {
        self.dir.volatile.lock().unwrap().contains_key("spare")
    }

    fn prepare_spare(&self, len: u64) -> io::Result<()> {
        self.alive()?;
        let disk = Arc::new(Disk::default());
        *disk.volatile.lock().unwrap() = vec![0; len as usize];
        sync_point(&self.power)?;
        *disk.durable.lock().unwrap() = vec![0; len as usize];
        self.dir
            .volatile
            .lock()
            .unwrap()
            .insert("spare".into(), disk);
        self.sync_dir()
    }

    fn discard_spare(&self) -> io::Result<()> {
        self.alive()?;
        self.dir.volatile.lock().unwrap().remove("spare");
        Ok(())
    }

    fn activate(&self, n: u64) -> io::Result<(Box<dyn LogSegment>, u64)> {
        self.alive()?;
        let (disk, capacity) = {
            let mut dir = self.dir.volatile.lock().unwrap();
            let disk = dir
                .remove("spare")
                .unwrap_or_else(|| Arc::new(Disk::default()));
            let capacity = disk.volatile.lock().unwrap().len() as u64;
            dir.insert(seg_name(n), Arc::clone(&disk));
            (disk, capacity)
        };
        self.sync_dir()?;
        let segment = CrashSegment {
            disk,
            power: Arc::clone(&self.power),
        };
        Ok((Box::new(segment), capacity))
    }

    fn retire(&self, n: u64, as_spare: bool) -> io::Result<()> {
        self.alive()?;
        {
            let mut dir = self.dir.volatile.lock().unwrap();
            if let Some(disk) = dir.remove(&seg_name(n)) {
                if as_spare && !dir.contains_key("spare") {
                    dir.insert("spare".into(), disk);
                }
            }
        }
        self.sync_dir()
    }
}

struct CrashSegment {
    disk: Arc<Disk>,
    power: Arc<Power>,
}

/// What a running process reads back from a file: its current content.
struct DiskReader(Arc<Disk>);

impl LogRead for DiskReader {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let v = self.0.volatile.lock().unwrap();
        let src = v
            .get(offset as usize..offset as usize + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.volatile.lock().unwrap().len() as u64)
    }
}

impl LogSegment for CrashSegment {
    fn reader(&self) -> io::Result<Arc<dyn LogRead>> {
        Ok(Arc::new(DiskReader(Arc::clone(&self.disk))))
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.power.alive()?;
        let mut v = self.disk.volatile.lock().unwrap();
        let end = offset as usize + data.len();
        if end > v.len() {
            v.resize(end, 0);
        }
        v[offset as usize..end].copy_from_slice(data);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        sync_point(&self.power)?;
        let v = self.disk.volatile.lock().unwrap().clone();
        *self.disk.durable.lock().unwrap() = v;
        Ok(())
    }
}

/// After a power cut: what survived on each disk becomes its whole content.
fn reboot(disks: &[Arc<Disk>]) -> Vec<Arc<Disk>> {
    disks
        .iter()
        .map(|d| {
            let durable = d.durable.lock().unwrap().clone();
            Arc::new(Disk {
                durable: Mutex::new(durable.clone()),
                volatile: Mutex::new(durable),
            })
        })
        .collect()
}

/// Expected state of one stream, as acknowledged so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Expect {
    exists: bool,
    data: Vec<u8>,
    closed: bool,
}

/// One generated write and how it changes the model.
#[derive(Clone, Debug)]
struct Write {
    path: String,
    req: Request,
    apply: Change,
    /// A producer append that a client would retry after an error.
    retry: bool,
}

#[derive(Clone, Debug)]
enum Change {
    Create(Vec<u8>),
    Fork { source: String },
    Append(Vec<u8>),
    Close(Vec<u8>),
    Delete,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn path(name: &str) -> String {
    format!("/v1/stream/{name}")
}

/// A deterministic workload: a list of groups of writes.
fn workload() -> Vec<Vec<Write>> {
    let mut rng = Rng(42);
    let names = ["a", "b", "c", "d", "e"];
    let mut groups = Vec::new();
    let mut created: BTreeMap<&str, bool> = BTreeMap::new();
    let mut closed: BTreeMap<&str, bool> = BTreeMap::new();
    let mut producer_seq = 0u64;
    let mut forks = 0;
    let mut counter = 0u32;
    for _ in 0..24 {
        let mut group = Vec::new();
        for _ in 0..(1 + rng.below(3)) {
            counter += 1;
            let name = names[rng.below(names.len() as u64) as usize];
            let p = path(name);
            let body = format!("<{name}{counter}>").into_bytes();
            if !created.get(name).copied().unwrap_or(false) {
                let req = Request::new(Method::Put, p.clone())
                    .header("content-type", "text/plain")
                    .body(body.clone());
                group.push(Write {
                    path: p,
                    req,
                    apply: Change::Create(body),
                    retry: false,
                });
                created.insert(name, true);
                closed.insert(name, false);
                continue;
            }
            if closed[name] {
                continue;
            }
            match rng.below(10) {
                0..=3 => {
                    let req = Request::new(Method::Post, p.clone())
                        .header("content-type", "text/plain")
                        .body(body.clone());
                    group.push(Write {
                        path: p,
                        req,
                        apply: Change::Append(body),
                        retry: false,
                    });
                }
                4..=6 if name == "a" => {
                    let req = Request::new(Method::Post, p.clone())
                        .header("content-type", "text/plain")
                        .header("producer-id", "writer-1")
                        .header("producer-epoch", "0")
                        .header("producer-seq", &producer_seq.to_string())
                        .body(body.clone());
                    producer_seq += 1;
                    group.push(Write {
                        path: p,
                        req,
                        apply: Change::Append(body),
                        retry: true,
                    });
                }
                7 if forks < 2 && name != "a" => {
                    forks += 1;
                    let fork = path(&format!("fork{forks}"));
                    let req =
                        Request::new(Method::Put, fork.clone()).header("stream-forked-from", &p);
                    group.push(Write {
                        path: fork,
                        req,
                        apply: Change::Fork { source: p },
                        retry: false,
                    });
                }
                8 if name == "e" => {
                    let req = Request::new(Method::Delete, p.clone());
                    group.push(Write {
                        path: p,
                        req,
                        apply: Change::Delete,
                        retry: false,
                    });
                    created.insert(name, false);
                }
                9 if name == "d" => {
                    let req = Request::new(Method::Post, p.clone())
                        .header("content-type", "text/plain")
                        .header("stream-closed", "true")
                        .body(body.clone());
                    group.push(Write {
                        path: p,
                        req,
                        apply: Change::Close(body),
                        retry: false,
                    });
                    closed.insert(name, true);
                }
                _ => {
                    let req = Request::new(Method::Post, p.clone())
                        .header("content-type", "text/plain")
                        .body(body.clone());
                    group.push(Write {
                        path: p,
                        req,
                        apply: Change::Append(body),
                        retry: false,
                    });
                }
            }
        }
        groups.push(group);
    }
    groups
}

fn apply(model: &mut BTreeMap<String, Expect>, committed: &BTreeMap<String, Expect>, w: &Write) {
    let e = model.entry(w.path.clone()).or_default();
    match &w.apply {
        Change::Create(body) => {
            *e = Expect {
                exists: true,
                data: body.clone(),
                closed: false,
            }
        }
        Change::Fork { source } => {
            // Forks branch from the source's committed state.
            let src = committed.get(source).cloned().unwrap_or_default();
            *e = Expect {
                exists: true,
                data: src.data,
                closed: false,
            };
        }
        Change::Append(body) => e.data.extend_from_slice(body),
        Change::Close(body) => {
            e.data.extend_from_slice(body);
            e.closed = true;
        }
        Change::Delete => *e = Expect::default(),
    }
}

fn settle(engine: &mut Engine<DynStore>, req: Request) -> Response {
    match engine.handle_and_commit(req, UnixMillis(1_800_000_000_000)) {
        Outcome::Respond(r) => r,
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn observe(engine: &mut Engine<DynStore>, p: &str) -> Expect {
    let res = settle(engine, Request::new(Method::Get, p).query("offset=-1"));
    if res.status == 404 {
        return Expect::default();
    }
    assert_eq!(res.status, 200, "reading {p}");
    let closed = res.header("stream-closed") == Some("true");
    Expect {
        exists: true,
        data: res.body_bytes().into_owned(),
        closed,
    }
}

/// Runs the workload until power fails at sync `fail_at`; returns the
/// acknowledged model, the in-doubt group, and the disks.
fn run_until_crash(
    setup: Setup,
    fail_at: usize,
) -> (BTreeMap<String, Expect>, Vec<Write>, Disks, usize) {
    let disks = Disks::fresh();
    let power = Power::on();
    let mut committed = BTreeMap::new();
    // Initialising a data directory is not under test here (an interrupted
    // initialisation starts over; see RedbShards::open): count from after it.
    let mut engine = open_engine(setup, &disks, &power).expect("fresh shards open");
    let base = power.syncs.load(Ordering::SeqCst);
    power
        .fail_at
        .store(base.saturating_add(fail_at), Ordering::SeqCst);
    for group in workload() {
        let mut tickets = Vec::new();
        let mut staged_model = committed.clone();
        for w in &group {
            match engine.handle(w.req.clone(), UnixMillis(1_800_000_000_000)) {
                Outcome::Pending(t) => tickets.push(t),
                Outcome::Respond(r) => {
                    panic!("write answered before commit: {} {}", r.status, w.path)
                }
                Outcome::Wait(_) => unreachable!(),
            }
            apply(&mut staged_model, &committed, w);
        }
        let settled = engine.commit_pending();
        let ok = settled.iter().all(|(_, r)| r.status < 300);
        if !ok {
            assert!(
                power.dead.load(Ordering::SeqCst),
                "a commit failed without a power cut: {settled:?}"
            );
            return (
                committed,
                group,
                disks,
                power.syncs.load(Ordering::SeqCst) - base,
            );
        }
        assert_eq!(settled.len(), tickets.len());
        committed = staged_model;
    }
    (
        committed,
        Vec::new(),
        disks,
        power.syncs.load(Ordering::SeqCst) - base,
    )
}

#[test]
fn every_acknowledged_write_survives_power_loss_at_every_sync_redb() {
    every_acknowledged_write_survives_power_loss_at_every_sync(Setup::Redb);
}

#[test]
fn every_acknowledged_write_survives_power_loss_at_every_sync_logged() {
    every_acknowledged_write_survives_power_loss_at_every_sync(Setup::Logged);
}

fn every_acknowledged_write_survives_power_loss_at_every_sync(setup: Setup) {
    let (full, _, _, total_syncs) = run_until_crash(setup, usize::MAX);
    assert!(
        total_syncs > 20,
        "the workload should sync many times ({total_syncs})"
    );
    assert!(full.values().any(|e| e.exists));
    let (mut in_doubt_groups, mut retried) = (0, 0);
    for fail_at in 1..=total_syncs {
        let (committed, doubt, disks, _) = run_until_crash(setup, fail_at);
        in_doubt_groups += usize::from(!doubt.is_empty());
        retried += doubt.iter().filter(|w| w.retry).count();
        let disks = disks.reboot();
        let power = Power::on();
        let mut engine = open_engine(setup, &disks, &power).unwrap_or_else(|e| {
            panic!("sync {fail_at}: the shards do not reopen after a power cut: {e}")
        });

        let mut with_doubt = committed.clone();
        for w in &doubt {
            apply(&mut with_doubt, &committed, w);
        }
        let paths: Vec<String> = with_doubt.keys().cloned().collect();
        for p in &paths {
            let actual = observe(&mut engine, p);
            let before = committed.get(p).cloned().unwrap_or_default();
            let after = with_doubt.get(p).cloned().unwrap_or_default();
            assert!(
                actual == before || actual == after,
                "sync {fail_at}: {p} is neither its acknowledged state nor that plus its in-doubt group\n\
                 actual {actual:?}\n before {before:?}\n after {after:?}"
            );
        }
        // A client retries its in-doubt producer appends: each lands once.
        for w in doubt.iter().filter(|w| w.retry) {
            let res = settle(&mut engine, w.req.clone());
            assert!(
                res.status == 200 || res.status == 204,
                "sync {fail_at}: retry of {} got {}",
                w.path,
                res.status
            );
        }
        for w in doubt.iter().filter(|w| w.retry) {
            let actual = observe(&mut engine, &w.path);
            let mut expect = with_doubt[&w.path].clone();
            // Non-producer writes of the same group may be absent; compare
            // only the producer's data, which must be present exactly once.
            if let Change::Append(body) = &w.apply {
                let count = actual
                    .data
                    .windows(body.len())
                    .filter(|win| win == &body.as_slice())
                    .count();
                assert_eq!(
                    count,
                    1,
                    "sync {fail_at}: producer data {:?} appears {count} times",
                    String::from_utf8_lossy(body)
                );
            }
            expect.data.clear();
        }
    }
    eprintln!("{setup:?}: {total_syncs} power-cut points, {in_doubt_groups} with a group in doubt, {retried} producer retries");
    assert!(
        in_doubt_groups * 2 > total_syncs,
        "most cuts should land inside a group commit"
    );
    assert!(retried > 0, "some cuts should hit a producer append");
}
