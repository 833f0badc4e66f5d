//! The scenarios. Each one loads a running server, measures, then checks
//! what it measured against what the server acknowledged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::arrival::since_epoch;
use crate::client::{Conn, Head};
use crate::stats::Samples;

/// Sizes, counts and durations of every scenario.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Connections (writers) of the append scenarios.
    pub conns: usize,
    /// How long each append scenario runs.
    pub duration: Duration,
    /// Body size of byte appends.
    pub append_bytes: usize,
    /// Approximate size of each JSON object in json-append.
    pub json_bytes: usize,
    /// Size of the catch-up stream.
    pub catchup_bytes: u64,
    /// Append size used to build the catch-up stream.
    pub catchup_append_bytes: usize,
    /// How many times the catch-up stream is read.
    pub catchup_reads: usize,
    /// Live readers of the fan-out scenarios.
    pub readers: usize,
    /// Appends per second of the fan-out writer.
    pub fanout_rate: f64,
    /// How long the fan-out writer writes.
    pub fanout_duration: Duration,
    /// Streams created by many-streams.
    pub streams: usize,
    /// Initial bytes of each stream in many-streams.
    pub stream_bytes: usize,
    /// Streams written before the restart scenario restarts the server.
    pub restart_streams: usize,
    /// Bytes written before the restart scenario restarts the server.
    pub restart_bytes: u64,
    /// Timeout of one request.
    pub request_timeout: Duration,
}

/// What one run of a scenario measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Named measurements.
    pub metrics: BTreeMap<String, f64>,
    /// Errors and failed checks (the first few of each kind are kept).
    pub errors: Errors,
    /// What was verified, in words.
    pub checks: Vec<String>,
}

/// Errors seen during a run.
#[derive(Debug, Default, Clone)]
pub struct Errors {
    /// How many.
    pub count: u64,
    /// The first few messages.
    pub first: Vec<String>,
}

impl Errors {
    /// Records one error.
    pub fn push(&mut self, msg: impl Into<String>) {
        self.count += 1;
        let msg = msg.into();
        if self.first.len() < 8 && !self.first.contains(&msg) {
            self.first.push(msg);
        }
    }

    /// Adds another set.
    pub fn merge(&mut self, other: Errors) {
        self.count += other.count;
        for m in other.first {
            if self.first.len() < 8 && !self.first.contains(&m) {
                self.first.push(m);
            }
        }
    }
}

impl Report {
    fn set(&mut self, name: &str, value: f64) {
        self.metrics.insert(name.to_string(), value);
    }
}

/// Where the scenario runs.
#[derive(Clone)]
pub struct Ctx {
    /// Server address (loopback).
    pub addr: SocketAddr,
    /// Stream URL prefix, ending in `/`.
    pub base: String,
    /// The bare baseline: no setup, no verification.
    pub bare: bool,
    /// A prefix that makes this run's stream names unique.
    pub prefix: String,
    /// Options.
    pub opts: Opts,
}

impl Ctx {
    fn path(&self, name: &str) -> String {
        format!("{}{}-{}", self.base, self.prefix, name)
    }
}

const OCTET: &str = "application/octet-stream";
const JSON: &str = "application/json";

async fn call(
    conn: &mut Conn,
    timeout: Duration,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Head, String> {
    match tokio::time::timeout(timeout, conn.request(method, target, headers, body)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            conn.reset();
            Err(format!("{method} {target}: {e}"))
        }
        Err(_) => {
            conn.reset();
            Err(format!("{method} {target}: timed out after {timeout:?}"))
        }
    }
}

async fn connect(addr: SocketAddr) -> Result<Conn, String> {
    Conn::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))
}

async fn create(ctx: &Ctx, conn: &mut Conn, path: &str, ctype: &str) -> Result<(), String> {
    let r = call(
        conn,
        ctx.opts.request_timeout,
        "PUT",
        path,
        &[("Content-Type", ctype)],
        b"",
    )
    .await?;
    if r.status == 201 || r.status == 200 {
        Ok(())
    } else {
        Err(format!("PUT {path}: status {}", r.status))
    }
}

// ---------------------------------------------------------------- records

/// A self-describing byte record of exactly `size` bytes:
/// `w0007s0000000042|` then a fill derived from writer and sequence.
fn byte_record(writer: usize, seq: u64, size: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(format!("w{writer:04}s{seq:010}|").as_bytes());
    let fill = b'a' + ((writer as u64 * 7 + seq) % 26) as u8;
    out.resize(start + size, fill);
}

const RECORD_HEADER: usize = 17;

/// Checks a byte stream made of records of `size` bytes: every writer's
/// records appear in sequence 0, 1, 2, … and `acked[w]` of them exist.
fn verify_byte_records(
    data: &[u8],
    size: usize,
    acked: &[u64],
    only_writer: Option<usize>,
) -> Result<(), String> {
    if !data.len().is_multiple_of(size) {
        return Err(format!(
            "stream length {} is not a multiple of {size}",
            data.len()
        ));
    }
    let mut next = vec![0u64; acked.len()];
    let mut expect = Vec::with_capacity(size);
    for (i, rec) in data.chunks(size).enumerate() {
        let bad = || format!("record {i} is malformed");
        let head = std::str::from_utf8(&rec[..RECORD_HEADER]).map_err(|_| bad())?;
        if !head.starts_with('w') || &head[5..6] != "s" || &head[16..17] != "|" {
            return Err(bad());
        }
        let w: usize = head[1..5].parse().map_err(|_| bad())?;
        let seq: u64 = head[6..16].parse().map_err(|_| bad())?;
        if w >= acked.len() || only_writer.is_some_and(|o| o != w) {
            return Err(format!("record {i} comes from unexpected writer {w}"));
        }
        if seq != next[w] {
            return Err(format!(
                "record {i}: writer {w} sequence {seq}, expected {} (lost or duplicated append)",
                next[w]
            ));
        }
        expect.clear();
        byte_record(w, seq, size, &mut expect);
        if rec != &expect[..] {
            return Err(format!("record {i}: bytes differ from what was written"));
        }
        next[w] += 1;
    }
    for (w, (&got, &want)) in next.iter().zip(acked).enumerate() {
        if only_writer.is_some_and(|o| o != w) {
            continue;
        }
        if got != want {
            return Err(format!(
                "writer {w}: {got} records stored, {want} acknowledged"
            ));
        }
    }
    Ok(())
}

fn json_record(writer: usize, seq: u64, size: usize, out: &mut Vec<u8>) {
    let head = format!("{{\"w\":{writer},\"seq\":{seq},\"text\":\"");
    out.extend_from_slice(head.as_bytes());
    let pad = size.saturating_sub(head.len() + 2).max(1);
    let fill = b'a' + ((writer as u64 * 7 + seq) % 26) as u8;
    out.resize(out.len() + pad, fill);
    out.extend_from_slice(b"\"}");
}

/// Reads a stream from the start, following `Stream-Next-Offset` until
/// `Stream-Up-To-Date`; returns the bodies of every response.
async fn read_all(ctx: &Ctx, conn: &mut Conn, path: &str) -> Result<(Vec<Vec<u8>>, u64), String> {
    let mut bodies = Vec::new();
    let mut data = Vec::new();
    let trips = read_all_into(ctx, conn, path, &mut data, Some(&mut bodies)).await?;
    Ok((bodies, trips))
}

/// Like [`read_all`], appending every body to `out`; also collects each
/// body on its own when `bodies` is given. Returns the round trips.
async fn read_all_into(
    ctx: &Ctx,
    conn: &mut Conn,
    path: &str,
    out: &mut Vec<u8>,
    mut bodies: Option<&mut Vec<Vec<u8>>>,
) -> Result<u64, String> {
    let mut offset = "-1".to_string();
    let mut trips = 0u64;
    loop {
        let target = format!("{path}?offset={offset}");
        let before = out.len();
        let head = match tokio::time::timeout(
            ctx.opts.request_timeout,
            conn.request_into("GET", &target, &[], b"", out),
        )
        .await
        {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Err(format!("GET {target}: {e}")),
            Err(_) => {
                conn.reset();
                return Err(format!("GET {target}: timed out"));
            }
        };
        trips += 1;
        if head.status != 200 {
            return Err(format!("GET {target}: status {}", head.status));
        }
        let next = head
            .next_offset
            .clone()
            .ok_or_else(|| format!("GET {target}: no Stream-Next-Offset"))?;
        let empty = out.len() == before;
        if let Some(bodies) = bodies.as_mut() {
            bodies.push(out.split_off(before));
        }
        if head.up_to_date {
            return Ok(trips);
        }
        if empty && next == offset {
            return Err(format!("GET {target}: no progress and not up to date"));
        }
        offset = next;
    }
}

// ---------------------------------------------------------------- appends

/// Shape of an append load.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// Each writer appends to its own stream.
    OwnStream,
    /// Every writer appends to one stream.
    OneStream,
}

/// Body kind of an append load.
#[derive(Clone, Copy, Debug)]
pub enum BodyKind {
    /// `application/octet-stream` records of this many bytes.
    Bytes(usize),
    /// `application/json` objects of about this many bytes.
    Json(usize),
}

#[derive(Clone, Copy)]
enum Stop {
    At(Instant),
    Total(u64),
}

struct AppendResult {
    acked: Vec<u64>,
    latencies: Samples,
    errors: Errors,
    elapsed: Duration,
}

async fn append_load(
    ctx: &Ctx,
    writers: usize,
    shape: Shape,
    kind: BodyKind,
    stop_after: Option<Duration>,
    total: Option<u64>,
    paths: &[String],
) -> AppendResult {
    let ctype = match kind {
        BodyKind::Bytes(_) => OCTET,
        BodyKind::Json(_) => JSON,
    };
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop = match (stop_after, total) {
        (_, Some(n)) => Stop::Total(n),
        (Some(d), None) => Stop::At(start + d),
        (None, None) => Stop::At(start),
    };
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let path = match shape {
            Shape::OwnStream => paths[w].clone(),
            Shape::OneStream => paths[0].clone(),
        };
        let addr = ctx.addr;
        let timeout = ctx.opts.request_timeout;
        let issued = Arc::clone(&issued);
        tasks.push(tokio::spawn(async move {
            let mut lat = Samples::default();
            let mut errors = Errors::default();
            let mut seq = 0u64;
            let mut body = Vec::with_capacity(1024);
            let mut conn = match connect(addr).await {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e);
                    return (seq, lat, errors);
                }
            };
            let headers = [("Content-Type", ctype)];
            loop {
                match stop {
                    Stop::At(t) if Instant::now() >= t => break,
                    Stop::Total(n) if issued.fetch_add(1, Ordering::Relaxed) >= n => break,
                    _ => {}
                }
                body.clear();
                match kind {
                    BodyKind::Bytes(n) => byte_record(w, seq, n, &mut body),
                    BodyKind::Json(n) => json_record(w, seq, n, &mut body),
                }
                let t0 = Instant::now();
                match call(&mut conn, timeout, "POST", &path, &headers, &body).await {
                    Ok(r) if r.status == 204 || r.status == 200 => {
                        lat.push_us(t0.elapsed().as_micros());
                        seq += 1;
                    }
                    Ok(r) => {
                        errors.push(format!("POST {path}: status {}", r.status));
                        // Do not hammer a failing server.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        // A failed append was not stored: keep the sequence.
                    }
                    Err(e) => {
                        errors.push(e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (seq, lat, errors)
        }));
    }
    let mut res = AppendResult {
        acked: Vec::with_capacity(writers),
        latencies: Samples::default(),
        errors: Errors::default(),
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        match t.await {
            Ok((n, lat, errors)) => {
                res.acked.push(n);
                res.latencies.extend(&lat);
                res.errors.merge(errors);
            }
            Err(e) => {
                res.acked.push(0);
                res.errors.push(format!("writer task: {e}"));
            }
        }
    }
    res.elapsed = start.elapsed();
    res
}

/// append-many, append-hot, json-append and append-c1.
pub async fn append(ctx: &Ctx, writers: usize, shape: Shape, kind: BodyKind) -> Report {
    let mut report = Report::default();
    let streams = match shape {
        Shape::OwnStream => writers,
        Shape::OneStream => 1,
    };
    let paths: Vec<String> = (0..streams).map(|i| ctx.path(&format!("s{i}"))).collect();
    let ctype = match kind {
        BodyKind::Bytes(_) => OCTET,
        BodyKind::Json(_) => JSON,
    };
    if !ctx.bare {
        match connect(ctx.addr).await {
            Ok(mut c) => {
                for p in &paths {
                    if let Err(e) = create(ctx, &mut c, p, ctype).await {
                        report.errors.push(e);
                    }
                }
            }
            Err(e) => report.errors.push(e),
        }
        if report.errors.count > 0 {
            return report;
        }
    }
    let mut res = append_load(
        ctx,
        writers,
        shape,
        kind,
        Some(ctx.opts.duration),
        None,
        &paths,
    )
    .await;
    let acked: u64 = res.acked.iter().sum();
    report.set("appends", acked as f64);
    report.set("appends_per_s", acked as f64 / res.elapsed.as_secs_f64());
    report.set("p50_ms", res.latencies.pct_ms(50.0));
    report.set("p99_ms", res.latencies.pct_ms(99.0));
    report.set("max_ms", res.latencies.max_ms());
    report.errors.merge(res.errors);
    if ctx.bare {
        return report;
    }
    // Verify: read every stream back and compare with what was acknowledged.
    let mut conn = match connect(ctx.addr).await {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    let mut bytes_read = 0u64;
    for (i, path) in paths.iter().enumerate() {
        let (bodies, _) = match read_all(ctx, &mut conn, path).await {
            Ok(b) => b,
            Err(e) => {
                report.errors.push(format!("verify: {e}"));
                continue;
            }
        };
        let only = match shape {
            Shape::OwnStream => Some(i),
            Shape::OneStream => None,
        };
        let result = match kind {
            BodyKind::Bytes(n) => {
                let data = bodies.concat();
                bytes_read += data.len() as u64;
                verify_byte_records(&data, n, &own_acked(&res.acked, only), only)
            }
            BodyKind::Json(_) => verify_json(&bodies, &own_acked(&res.acked, only), only),
        };
        if let Err(e) = result {
            report.errors.push(format!("verify {path}: {e}"));
        }
    }
    if let BodyKind::Bytes(n) = kind {
        report.set("bytes_verified", bytes_read as f64);
        if bytes_read != acked * n as u64 {
            report.errors.push(format!(
                "verify: read {bytes_read} bytes, acknowledged {}",
                acked * n as u64
            ));
        }
    }
    report.checks.push(format!(
        "read back {} stream(s): every acknowledged append present once, in order, byte-exact",
        paths.len()
    ));
    report
}

/// The acknowledged counts a stream should hold: every writer's for the
/// shared stream, one writer's for its own.
fn own_acked(acked: &[u64], only: Option<usize>) -> Vec<u64> {
    match only {
        None => acked.to_vec(),
        Some(w) => acked
            .iter()
            .enumerate()
            .map(|(i, &n)| if i == w { n } else { 0 })
            .collect(),
    }
}

fn verify_json(bodies: &[Vec<u8>], acked: &[u64], only: Option<usize>) -> Result<(), String> {
    let mut next = vec![0u64; acked.len()];
    for body in bodies {
        if body.is_empty() {
            continue;
        }
        let items: Vec<serde_json::Value> = serde_json::from_slice(body)
            .map_err(|e| format!("response is not a JSON array: {e}"))?;
        for item in items {
            let w = item["w"].as_u64().ok_or("message without w")? as usize;
            let seq = item["seq"].as_u64().ok_or("message without seq")?;
            if w >= acked.len() || only.is_some_and(|o| o != w) {
                return Err(format!("message from unexpected writer {w}"));
            }
            if seq != next[w] {
                return Err(format!("writer {w}: message {seq}, expected {}", next[w]));
            }
            next[w] += 1;
        }
    }
    if next != acked {
        return Err(format!(
            "messages stored {next:?} != acknowledged {acked:?}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- catch-up

/// catchup-read: build one stream from small appends, then read it from
/// the start several times.
pub async fn catchup(ctx: &Ctx, memory: impl Fn() -> Option<(u64, u64)>) -> Report {
    let mut report = Report::default();
    let o = &ctx.opts;
    let size = o.catchup_append_bytes.max(RECORD_HEADER + 1);
    let total = o.catchup_bytes.div_ceil(size as u64);
    let path = ctx.path("catchup");
    let mut conn = match connect(ctx.addr).await {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    if let Err(e) = create(ctx, &mut conn, &path, OCTET).await {
        report.errors.push(e);
        return report;
    }
    let writers = o.conns.max(1);
    let res = append_load(
        ctx,
        writers,
        Shape::OneStream,
        BodyKind::Bytes(size),
        None,
        Some(total),
        std::slice::from_ref(&path),
    )
    .await;
    let acked: u64 = res.acked.iter().sum();
    report.set(
        "build_appends_per_s",
        acked as f64 / res.elapsed.as_secs_f64(),
    );
    report.errors.merge(res.errors);
    let expected = acked * size as u64;
    report.set("stream_bytes", expected as f64);
    if let Some((rss, _)) = memory() {
        report.set("rss_before_read_mib", rss as f64 / 1048576.0);
    }
    let mut rates = Vec::new();
    let mut trips_all = 0;
    for _ in 0..o.catchup_reads.max(1) {
        let mut conn = match connect(ctx.addr).await {
            Ok(c) => c,
            Err(e) => {
                report.errors.push(e);
                break;
            }
        };
        // The destination is allocated and touched before the clock starts,
        // for every target alike: page faults of the load generator's own
        // buffer are not the server's time.
        let mut data = vec![1u8; expected as usize + (1 << 20)];
        data.clear();
        let t0 = Instant::now();
        let got = read_all_into(ctx, &mut conn, &path, &mut data, None).await;
        let secs = t0.elapsed().as_secs_f64();
        match got {
            Ok(trips) => {
                rates.push(data.len() as f64 / 1048576.0 / secs);
                trips_all = trips;
                if data.len() as u64 != expected {
                    report.errors.push(format!(
                        "read {} bytes, acknowledged {expected}",
                        data.len()
                    ));
                } else if let Err(e) = verify_byte_records(&data, size, &res.acked, None) {
                    report.errors.push(format!("verify: {e}"));
                }
            }
            Err(e) => report.errors.push(e),
        }
    }
    report.set("mib_per_s", crate::stats::median(&rates));
    report.set(
        "mib_per_s_best",
        rates.iter().copied().fold(f64::NAN, f64::max),
    );
    report.set("round_trips", trips_all as f64);
    if let Some((rss, hwm)) = memory() {
        report.set("rss_after_read_mib", rss as f64 / 1048576.0);
        report.set("peak_rss_mib", hwm as f64 / 1048576.0);
    }
    report.checks.push(format!(
        "{} reads of {} MiB: length equals acknowledged bytes, every record in order and byte-exact",
        rates.len(),
        expected / 1048576
    ));
    report
}

// ---------------------------------------------------------------- fan-out

/// Live read mode of a fan-out.
#[derive(Clone, Copy, Debug)]
pub enum Live {
    /// `live=sse`.
    Sse,
    /// `live=long-poll`.
    LongPoll,
}

/// Finds `"seq":N` markers in `text`.
fn scan_seqs(text: &[u8], mut f: impl FnMut(u64)) {
    const KEY: &[u8] = b"\"seq\":";
    for at in memchr::memmem::find_iter(text, KEY) {
        let digits = &text[at + KEY.len()..];
        let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        if len > 0 {
            let n = digits[..len]
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            f(n);
        }
    }
}

/// End of the last complete SSE event in `buf` (after its blank line).
fn last_event_end(buf: &[u8]) -> Option<usize> {
    let lf = memchr::memmem::rfind(buf, b"\n\n").map(|i| i + 2);
    let crlf = memchr::memmem::rfind(buf, b"\r\n\r\n").map(|i| i + 4);
    lf.max(crlf)
}

struct ReaderOut {
    /// Sequence number, user-space receipt time, kernel arrival time.
    receipts: Vec<(u64, Instant, Option<Duration>)>,
    errors: Errors,
}

#[allow(clippy::too_many_arguments)]
async fn sse_reader(
    addr: SocketAddr,
    path: String,
    timeout: Duration,
    ready: Arc<AtomicUsize>,
    distinct: Arc<AtomicU64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> ReaderOut {
    let mut out = ReaderOut {
        receipts: Vec::new(),
        errors: Errors::default(),
    };
    let mut conn = match connect(addr).await {
        Ok(c) => c,
        Err(e) => {
            out.errors.push(e);
            return out;
        }
    };
    // Best effort: without kernel stamps only the receipt times are reported.
    let _ = conn.stamp_arrivals();
    let target = format!("{path}?offset=-1&live=sse");
    match tokio::time::timeout(timeout, conn.send_head("GET", &target, &[], b"")).await {
        Ok(Ok(h)) if h.status == 200 => {}
        Ok(Ok(h)) => {
            out.errors.push(format!("SSE {path}: status {}", h.status));
            return out;
        }
        Ok(Err(e)) => {
            out.errors.push(format!("SSE {path}: {e}"));
            return out;
        }
        Err(_) => {
            out.errors.push(format!("SSE {path}: no response head"));
            return out;
        }
    }
    let mut buf = Vec::with_capacity(4096);
    let mut counted_ready = false;
    let mut seen = Vec::<bool>::new();
    // One wait for the stop signal for the reader's whole life (not one
    // per read): the load generator shares the cores with the server.
    let stop_flag = stop.clone();
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            r = conn.read_body_some(&mut buf, usize::MAX) => {
                let now = Instant::now();
                match r {
                    Ok(false) => {}
                    Ok(true) => {
                        if !*stop_flag.borrow() {
                            out.errors.push(format!("SSE {path}: body ended early"));
                        }
                        return out;
                    }
                    Err(e) => {
                        out.errors.push(format!("SSE {path}: {e}"));
                        return out;
                    }
                }
                if let Some(end) = last_event_end(&buf) {
                    let arrived = conn.arrival();
                    scan_seqs(&buf[..end], |s| {
                        out.receipts.push((s, now, arrived));
                        let i = s as usize;
                        if seen.len() <= i {
                            seen.resize(i + 1, false);
                        }
                        if !seen[i] {
                            seen[i] = true;
                            distinct.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    buf.drain(..end);
                    if !counted_ready {
                        counted_ready = true;
                        ready.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = &mut stopped => return out,
        }
    }
}

async fn longpoll_reader(
    addr: SocketAddr,
    path: String,
    timeout: Duration,
    ready: Arc<AtomicUsize>,
    distinct: Arc<AtomicU64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> ReaderOut {
    let mut out = ReaderOut {
        receipts: Vec::new(),
        errors: Errors::default(),
    };
    let mut conn = match connect(addr).await {
        Ok(c) => c,
        Err(e) => {
            out.errors.push(e);
            return out;
        }
    };
    let _ = conn.stamp_arrivals();
    // Catch up first, to learn the tail.
    let mut offset = match call(
        &mut conn,
        timeout,
        "GET",
        &format!("{path}?offset=-1"),
        &[],
        b"",
    )
    .await
    {
        Ok(r) if r.status == 200 => match r.next_offset {
            Some(o) => o,
            None => {
                out.errors
                    .push(format!("GET {path}: no Stream-Next-Offset"));
                return out;
            }
        },
        Ok(r) => {
            out.errors.push(format!("GET {path}: status {}", r.status));
            return out;
        }
        Err(e) => {
            out.errors.push(e);
            return out;
        }
    };
    ready.fetch_add(1, Ordering::Relaxed);
    let mut seen = Vec::<bool>::new();
    let mut body = Vec::with_capacity(4096);
    loop {
        let target = format!("{path}?offset={offset}&live=long-poll");
        body.clear();
        let head: Head = tokio::select! {
            r = tokio::time::timeout(timeout, conn.request_into("GET", &target, &[], b"", &mut body)) => {
                match r {
                    Ok(Ok(h)) => h,
                    Ok(Err(e)) => {
                        conn.reset();
                        out.errors.push(format!("long-poll {path}: {e}"));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    Err(_) => {
                        conn.reset();
                        out.errors.push(format!("long-poll {path}: timed out"));
                        continue;
                    }
                }
            }
            _ = stop.changed() => return out,
        };
        let now = Instant::now();
        let arrived = conn.arrival();
        match head.status {
            200 => {
                scan_seqs(&body, |s| {
                    out.receipts.push((s, now, arrived));
                    let i = s as usize;
                    if seen.len() <= i {
                        seen.resize(i + 1, false);
                    }
                    if !seen[i] {
                        seen[i] = true;
                        distinct.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            204 => {}
            s => {
                out.errors.push(format!("long-poll {path}: status {s}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        if let Some(next) = head.next_offset {
            offset = next;
        }
    }
}

/// fanout-sse / fanout-longpoll: many live readers on one stream, one
/// writer at a fixed rate; latency from the writer's acknowledgement to
/// each reader's receipt.
pub async fn fanout(ctx: &Ctx, live: Live) -> Report {
    let mut report = Report::default();
    let o = ctx.opts.clone();
    let path = ctx.path("fanout");
    let mut wconn = match connect(ctx.addr).await {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    if let Err(e) = create(ctx, &mut wconn, &path, JSON).await {
        report.errors.push(e);
        return report;
    }
    let _ = wconn.stamp_arrivals();
    let ready = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut counters = Vec::with_capacity(o.readers);
    let mut readers = Vec::with_capacity(o.readers);
    for _ in 0..o.readers {
        let distinct = Arc::new(AtomicU64::new(0));
        counters.push(Arc::clone(&distinct));
        let (addr, path, ready, stop) =
            (ctx.addr, path.clone(), Arc::clone(&ready), stop_rx.clone());
        let timeout = o.request_timeout;
        readers.push(match live {
            Live::Sse => tokio::spawn(sse_reader(addr, path, timeout, ready, distinct, stop)),
            Live::LongPoll => {
                tokio::spawn(longpoll_reader(addr, path, timeout, ready, distinct, stop))
            }
        });
    }
    // Wait until every reader is connected (and, for long-poll, give the
    // first polls a moment to park).
    let t0 = Instant::now();
    while ready.load(Ordering::Relaxed) < o.readers && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connected = ready.load(Ordering::Relaxed);
    report.set("readers_connected", connected as f64);
    if connected < o.readers {
        report.errors.push(format!(
            "only {connected} of {} readers connected",
            o.readers
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The writer.
    let period = Duration::from_secs_f64(1.0 / o.fanout_rate.max(0.1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut acks: Vec<Option<Instant>> = Vec::new();
    // The kernel's arrival time of each acknowledgement.
    let mut ack_arrivals: Vec<Option<Duration>> = Vec::new();
    let mut sends: Vec<Instant> = Vec::new();
    // The same moments on the kernel stamps' clock (time since the epoch).
    let mut sends_wall: Vec<Duration> = Vec::new();
    let mut wlat = Samples::default();
    let start = Instant::now();
    let mut body = Vec::with_capacity(256);
    let mut seq = 0u64;
    while start.elapsed() < o.fanout_duration {
        tick.tick().await;
        body.clear();
        body.extend_from_slice(format!("{{\"seq\":{seq},\"text\":\"").as_bytes());
        body.resize(body.len() + 80, b'x');
        body.extend_from_slice(b"\"}");
        let t = Instant::now();
        sends.push(t);
        sends_wall.push(since_epoch());
        match call(
            &mut wconn,
            o.request_timeout,
            "POST",
            &path,
            &[("Content-Type", JSON)],
            &body,
        )
        .await
        {
            Ok(r) if r.status == 204 || r.status == 200 => {
                let now = Instant::now();
                wlat.push_us((now - t).as_micros());
                acks.push(Some(now));
                ack_arrivals.push(wconn.arrival());
            }
            Ok(r) => {
                report.errors.push(format!("writer: status {}", r.status));
                acks.push(None);
                ack_arrivals.push(None);
            }
            Err(e) => {
                report.errors.push(format!("writer: {e}"));
                acks.push(None);
                ack_arrivals.push(None);
            }
        }
        seq += 1;
    }
    let write_secs = start.elapsed().as_secs_f64();
    let acked = acks.iter().filter(|a| a.is_some()).count() as u64;
    report.set("writer_appends", acked as f64);
    report.set("writer_rate", acked as f64 / write_secs);
    report.set("writer_p50_ms", wlat.pct_ms(50.0));
    report.set("writer_p99_ms", wlat.pct_ms(99.0));
    // When each acknowledgement reached the writer's socket, by its kernel
    // stamp: the load generator reads it only after the reader events
    // queued before it, so `writer_p50_ms` can be far later than this.
    let mut ack_kernel = Samples::default();
    for (sent, arrived) in sends_wall.iter().zip(&ack_arrivals) {
        if let Some(arrived) = arrived {
            ack_kernel.push_us(arrived.saturating_sub(*sent).as_micros());
        }
    }
    if !ack_kernel.0.is_empty() && ack_kernel.0.len() == wlat.0.len() {
        report.set("writer_ack_arrival_p50_ms", ack_kernel.pct_ms(50.0));
        report.set("writer_ack_arrival_p99_ms", ack_kernel.pct_ms(99.0));
    }

    // Let the readers catch up (at most 5 s), then stop them.
    let grace = Instant::now();
    while grace.elapsed() < Duration::from_secs(5)
        && counters.iter().any(|c| c.load(Ordering::Relaxed) < acked)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(true);
    let mut lat = Samples::default();
    let mut e2e = Samples::default();
    let mut arrival = Samples::default();
    let (mut lost, mut dup, mut unexpected, mut early) = (0u64, 0u64, 0u64, 0u64);
    for r in readers {
        let out = match r.await {
            Ok(o) => o,
            Err(e) => {
                report.errors.push(format!("reader task: {e}"));
                continue;
            }
        };
        report.errors.merge(out.errors);
        let mut count = vec![0u32; acks.len()];
        for (s, at, arrived) in out.receipts {
            let i = s as usize;
            match acks.get(i) {
                Some(Some(ack)) => {
                    count[i] += 1;
                    if count[i] == 1 {
                        e2e.push_us(at.saturating_duration_since(sends[i]).as_micros());
                        if let (Some(arrived), Some(Some(acked))) = (arrived, ack_arrivals.get(i)) {
                            arrival.push_us(arrived.saturating_sub(*acked).as_micros());
                        }
                        if at < *ack {
                            early += 1;
                            lat.push_us(0);
                        } else {
                            lat.push_us((at - *ack).as_micros());
                        }
                    }
                }
                _ => unexpected += 1,
            }
        }
        for (i, a) in acks.iter().enumerate() {
            if a.is_some() {
                match count[i] {
                    0 => lost += 1,
                    1 => {}
                    n => dup += u64::from(n - 1),
                }
            }
        }
    }
    report.set("p50_ms", lat.pct_ms(50.0));
    report.set("p99_ms", lat.pct_ms(99.0));
    report.set("max_ms", lat.max_ms());
    report.set("send_to_receive_p50_ms", e2e.pct_ms(50.0));
    report.set("send_to_receive_p99_ms", e2e.pct_ms(99.0));
    // Kernel arrival times: the same latency without the load generator's
    // own queue (see `arrival.rs`); absent when stamps were unavailable.
    if !arrival.0.is_empty() && arrival.0.len() == lat.0.len() {
        report.set("arrival_p50_ms", arrival.pct_ms(50.0));
        report.set("arrival_p99_ms", arrival.pct_ms(99.0));
        report.set("arrival_max_ms", arrival.max_ms());
    }
    report.set("deliveries", lat.0.len() as f64);
    report.set("lost", lost as f64);
    report.set("duplicates", dup as f64);
    report.set("unacknowledged_seen", unexpected as f64);
    report.set("before_ack", early as f64);
    if lost > 0 {
        report.errors.push(format!("{lost} deliveries lost"));
    }
    if dup > 0 {
        report.errors.push(format!("{dup} duplicate deliveries"));
    }
    report.checks.push(format!(
        "{} readers × {acked} acknowledged messages: each delivered exactly once",
        o.readers
    ));
    report
}

// ---------------------------------------------------------------- many streams

fn stream_content(i: usize, size: usize) -> Vec<u8> {
    let mut v = format!("stream {i:08} ").into_bytes();
    let fill = b'A' + (i % 26) as u8;
    v.resize(size.max(v.len()), fill);
    v.truncate(size);
    v
}

/// Creates `n` streams (each with `size` initial bytes), `conns` at a time.
async fn create_many(ctx: &Ctx, n: usize, size: usize, name: &'static str) -> (Duration, Errors) {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..ctx.opts.conns.max(1) {
        let next = Arc::clone(&next);
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Errors::default();
            let mut conn = match connect(ctx.addr).await {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e);
                    return errors;
                }
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return errors;
                }
                let path = ctx.path(&format!("{name}{i}"));
                let body = stream_content(i, size);
                // Bodies above 1 MiB go in as appends after an empty create.
                let (first, rest) = body.split_at(body.len().min(1 << 20));
                match call(
                    &mut conn,
                    ctx.opts.request_timeout,
                    "PUT",
                    &path,
                    &[("Content-Type", OCTET)],
                    first,
                )
                .await
                {
                    Ok(r) if r.status == 201 => {}
                    Ok(r) => errors.push(format!("PUT {path}: status {}", r.status)),
                    Err(e) => errors.push(e),
                }
                for part in rest.chunks(1 << 20) {
                    match call(
                        &mut conn,
                        ctx.opts.request_timeout,
                        "POST",
                        &path,
                        &[("Content-Type", OCTET)],
                        part,
                    )
                    .await
                    {
                        Ok(r) if r.status == 204 || r.status == 200 => {}
                        Ok(r) => errors.push(format!("POST {path}: status {}", r.status)),
                        Err(e) => errors.push(e),
                    }
                }
            }
        }));
    }
    let mut errors = Errors::default();
    for t in tasks {
        match t.await {
            Ok(e) => errors.merge(e),
            Err(e) => errors.push(format!("task: {e}")),
        }
    }
    (start.elapsed(), errors)
}

/// Reads back streams `indices` and compares them with what was written.
async fn verify_many(ctx: &Ctx, indices: Vec<usize>, size: usize, name: &'static str) -> Errors {
    let queue = Arc::new(std::sync::Mutex::new(indices));
    let mut tasks = Vec::new();
    for _ in 0..ctx.opts.conns.max(1) {
        let queue = Arc::clone(&queue);
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Errors::default();
            let mut conn = match connect(ctx.addr).await {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e);
                    return errors;
                }
            };
            loop {
                let Some(i) = queue.lock().expect("queue").pop() else {
                    return errors;
                };
                let path = ctx.path(&format!("{name}{i}"));
                match read_all(&ctx, &mut conn, &path).await {
                    Ok((bodies, _)) => {
                        if bodies.concat() != stream_content(i, size) {
                            errors.push(format!("verify {path}: content differs"));
                        }
                    }
                    Err(e) => errors.push(format!("verify: {e}")),
                }
            }
        }));
    }
    let mut errors = Errors::default();
    for t in tasks {
        match t.await {
            Ok(e) => errors.merge(e),
            Err(e) => errors.push(format!("task: {e}")),
        }
    }
    errors
}

/// many-streams: create many small streams; creations/s and server memory
/// per stream.
pub async fn many_streams(ctx: &Ctx, memory: impl Fn() -> Option<(u64, u64)>) -> Report {
    let mut report = Report::default();
    let (n, size) = (ctx.opts.streams, ctx.opts.stream_bytes);
    let before = memory();
    let (elapsed, errors) = create_many(ctx, n, size, "m").await;
    report.errors.merge(errors);
    report.set("streams", n as f64);
    report.set("creations_per_s", n as f64 / elapsed.as_secs_f64());
    // Memory per stream is what the server keeps for the streams it holds,
    // so it is read once the server has settled: 200 ms after the last
    // creation, then every 100 ms until two readings agree within 1% (at
    // most 3 s), for every target alike. Servers that finish background
    // work (a log checkpoint, allocator purges) later than 200 ms are not
    // charged for it; the 200 ms reading is reported too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let early = memory();
    let mut after = early;
    let settle_by = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle_by {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let next = memory();
        let stable = match (after, next) {
            (Some((a, _)), Some((b, _))) => a.abs_diff(b) * 100 <= a.max(1),
            _ => true,
        };
        after = next;
        if stable {
            break;
        }
    }
    if let (Some((b, _)), Some((a, _)), Some((e, _))) = (before, after, early) {
        report.set("rss_before_mib", b as f64 / 1048576.0);
        report.set("rss_after_mib", a as f64 / 1048576.0);
        report.set("rss_per_stream_bytes", (a as f64 - b as f64) / n as f64);
        report.set(
            "rss_per_stream_at_200ms_bytes",
            (e as f64 - b as f64) / n as f64,
        );
    }
    let errors = verify_many(ctx, (0..n).collect(), size, "m").await;
    report.errors.merge(errors);
    report
        .checks
        .push(format!("all {n} streams read back byte-exact"));
    report
}

/// The populate step of the restart scenario: `restart_streams` streams
/// holding `restart_bytes` in total.
pub async fn restart_populate(ctx: &Ctx) -> Report {
    let mut report = Report::default();
    let n = ctx.opts.restart_streams.max(1);
    let size = (ctx.opts.restart_bytes / n as u64) as usize;
    let (elapsed, errors) = create_many(ctx, n, size, "r").await;
    report.errors.merge(errors);
    report.set("populate_s", elapsed.as_secs_f64());
    report.set(
        "populate_mib_per_s",
        (n * size) as f64 / 1048576.0 / elapsed.as_secs_f64(),
    );
    report.set("data_mib", (n * size) as f64 / 1048576.0);
    report
}

/// Polls `HEAD` of the first stream until it answers 200; the time since
/// `since` when it did.
pub async fn first_head(ctx: &Ctx, since: Instant, limit: Duration) -> Result<Duration, String> {
    let path = ctx.path("r0");
    loop {
        if let Ok(mut c) = Conn::connect(ctx.addr).await {
            if let Ok(Ok(r)) = tokio::time::timeout(limit, c.request("HEAD", &path, &[], b"")).await
            {
                if r.status == 200 {
                    return Ok(since.elapsed());
                }
            }
        }
        if since.elapsed() > limit {
            return Err(format!("no successful HEAD {path} within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// After a restart: every sampled stream is back with its content.
pub async fn restart_verify(ctx: &Ctx, sample: usize) -> Errors {
    let n = ctx.opts.restart_streams.max(1);
    let size = (ctx.opts.restart_bytes / n as u64) as usize;
    let step = (n / sample.max(1)).max(1);
    let indices: Vec<usize> = (0..n).step_by(step).chain([n - 1]).collect();
    verify_many(ctx, indices, size, "r").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_records_round_trip() {
        let mut data = Vec::new();
        for seq in 0..3 {
            byte_record(1, seq, 40, &mut data);
            byte_record(0, seq, 40, &mut data);
        }
        verify_byte_records(&data, 40, &[3, 3], None).unwrap();
        assert!(verify_byte_records(&data, 40, &[3, 4], None).is_err());
        data.truncate(40 * 5);
        assert!(verify_byte_records(&data, 40, &[3, 3], None).is_err());
    }

    #[test]
    fn seqs_and_events_are_found() {
        let mut got = Vec::new();
        scan_seqs(
            b"event: data\ndata: [{\"seq\":12,\"t\":\"x\"},{\"seq\":13}]\n\n",
            |s| got.push(s),
        );
        assert_eq!(got, [12, 13]);
        assert_eq!(last_event_end(b"a\n\nb\n\nc"), Some(6));
        assert_eq!(last_event_end(b"a\r\n\r\nb"), Some(5));
        assert_eq!(last_event_end(b"abc"), None);
    }

    #[test]
    fn json_records_have_about_the_size() {
        let mut v = Vec::new();
        json_record(3, 99, 200, &mut v);
        assert_eq!(v.len(), 200);
        let parsed: serde_json::Value = serde_json::from_slice(&v).unwrap();
        assert_eq!(parsed["seq"], 99);
    }
}
