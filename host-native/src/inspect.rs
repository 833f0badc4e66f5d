//! `list` and `inspect`: what a data directory holds, read offline from the
//! stored metadata (the server must be stopped).

use ds_core::offset::Offset;
use ds_core::stream::{Expiry, StreamMeta};
use ds_core::Store;
use serde_json::{json, Value};

use crate::archive_cli::open_offline;
use crate::cli::{InspectArgs, StoreArgs};

const ROOT: &str = "/v1/stream/";

fn describe(path: &str, m: &StreamMeta) -> Value {
    let own = m.tail - m.fork.as_ref().map_or(0, |f| f.point);
    json!({
        "path": path.strip_prefix(ROOT).unwrap_or(path),
        "id": m.id,
        "content_type": m.content_type,
        "created_at": ds_core::time::format_rfc3339(ds_core::UnixMillis(m.created_at)),
        "next_offset": Offset(m.tail).to_string(),
        "bytes": own,
        "closed": m.closed,
        "closed_by": m.closed_by.as_ref().map(|c| json!({"producer": c.id, "epoch": c.epoch, "seq": c.seq})),
        "soft_deleted": m.soft_deleted,
        "fork": m.fork.as_ref().map(|f| json!({
            "source": f.source.strip_prefix(ROOT).unwrap_or(&f.source),
            "point": Offset(f.point).to_string(),
            "anchor": Offset(f.anchor).to_string(),
            "sub_offset": f.sub_offset,
        })),
        "expiry": match &m.expiry {
            Expiry::Never => json!("never"),
            Expiry::Ttl(secs) => json!({"ttl_secs": secs,
                "expires_at": ds_core::time::format_rfc3339(ds_core::UnixMillis(m.last_access.saturating_add(secs.saturating_mul(1000))))}),
            Expiry::At(d) => json!({"expires_at": d.text}),
        },
        "last_stream_seq": m.last_stream_seq,
        "producers": m.producers.iter().map(|(k, p)| (k.clone(), json!({"epoch": p.epoch, "last_seq": p.last_seq}))).collect::<serde_json::Map<_, _>>(),
    })
}

fn state(m: &StreamMeta) -> String {
    let mut parts = Vec::new();
    if m.soft_deleted {
        parts.push("deleted (kept for forks)".to_string());
    } else if m.closed {
        parts.push("closed".to_string());
    } else {
        parts.push("open".to_string());
    }
    if let Some(f) = &m.fork {
        parts.push(format!(
            "fork of {}",
            f.source.strip_prefix(ROOT).unwrap_or(&f.source)
        ));
    }
    parts.join(", ")
}

/// Every stream's `(path, metadata)` under `prefix`, sorted.
fn streams(
    store: &dyn Store,
    prefix: &str,
) -> Result<Vec<(String, StreamMeta)>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for (path, blob) in store.load_meta()? {
        let Some(rel) = path.strip_prefix(ROOT) else {
            continue;
        };
        if !rel.starts_with(prefix) {
            continue;
        }
        match StreamMeta::decode(&path, &blob) {
            Ok(meta) => out.push((path, meta)),
            // Reserved control records (subscriptions) are not streams.
            Err(_) if rel.starts_with("__ds/") => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// `list`: one line per stream (or a JSON array).
pub fn list(args: &StoreArgs) -> Result<(), Box<dyn std::error::Error>> {
    let engine = open_offline(&args.data_dir, false)?;
    let all = streams(engine.store(), &args.prefix)?;
    if args.json {
        let v: Vec<Value> = all.iter().map(|(p, m)| describe(p, m)).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{:<40} {:<28} {:>12}  STATE",
        "STREAM", "CONTENT-TYPE", "BYTES"
    );
    for (path, m) in &all {
        let own = m.tail - m.fork.as_ref().map_or(0, |f| f.point);
        println!(
            "{:<40} {:<28} {:>12}  {}",
            path.strip_prefix(ROOT).unwrap_or(path),
            m.content_type,
            own,
            state(m)
        );
    }
    let bytes: u64 = all
        .iter()
        .map(|(_, m)| m.tail - m.fork.as_ref().map_or(0, |f| f.point))
        .sum();
    println!("{} streams, {bytes} bytes", all.len());
    Ok(())
}

/// `inspect`: everything about one stream, as JSON, with its record count
/// and optionally its first records.
pub fn inspect(args: &InspectArgs) -> Result<(), Box<dyn std::error::Error>> {
    let engine = open_offline(&args.data_dir, false)?;
    let path = if args.stream.starts_with('/') {
        args.stream.clone()
    } else {
        format!("{ROOT}{}", args.stream)
    };
    let blob = engine
        .store()
        .load_meta()?
        .into_iter()
        .find(|(p, _)| *p == path)
        .map(|(_, b)| b)
        .ok_or_else(|| format!("no stream at {path}"))?;
    let meta = StreamMeta::decode(&path, &blob)?;
    let mut v = describe(&path, &meta);
    let mut from = meta.fork.as_ref().map_or(0, |f| f.point);
    let (mut count, mut shown) = (0u64, Vec::new());
    while from < meta.tail {
        let records = engine
            .store()
            .read(&path, meta.id, from, meta.tail, 1 << 20)?;
        let before = from;
        for r in records.iter().filter(|r| r.start >= before) {
            count += 1;
            if shown.len() < args.records {
                shown.push(json!({
                    "offset": Offset(r.start).to_string(),
                    "bytes": r.data.len(),
                    "text": String::from_utf8_lossy(&r.data[..r.data.len().min(200)]),
                }));
            }
            from = r.end();
        }
        if from == before {
            return Err(format!("{path}: no stored record at position {from}").into());
        }
    }
    v["records"] = json!(count);
    if args.records > 0 {
        v["first_records"] = Value::Array(shown);
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
