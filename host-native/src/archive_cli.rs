//! `export` and `import`: backup and restore of a data directory through the
//! core's archive format (the same files the wasm host reads and writes).
//! Both open the data directory directly, so the server must be stopped (a
//! running server holds the shards; the command then exits with code 3).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use ds_core::archive::{ArchiveReader, ArchiveWriter};
use ds_core::{ArchiveError, ArchiveInfo, ConflictMode, Engine};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{ExportArgs, ImportArgs};
use crate::clock::Clock;
use crate::driver::DynStore;
use crate::redb_shards::DEFAULT_SHARDS;
use crate::wal::LoggedStore;

/// Opens the engine over a data directory for an offline command; only
/// `import` may `create` one.
pub fn open_offline(
    dir: &Path,
    create: bool,
) -> Result<Engine<DynStore>, Box<dyn std::error::Error>> {
    if !create && !dir.join("layout.json").exists() {
        return Err(format!("{} is not a data directory (no layout.json)", dir.display()).into());
    }
    let store: DynStore = Arc::new(LoggedStore::open(dir, DEFAULT_SHARDS)?);
    let now = Clock::system().now();
    let mut engine = Engine::open(store, ds_core::Config::default(), now, now.0)?;
    // Whatever opening staged (clean-ups) is committed before we start.
    engine.commit_pending();
    Ok(engine)
}

/// `export`: writes the selected streams to an archive, with a progress bar
/// on a terminal. The file appears only once it is complete.
pub fn export(args: &ExportArgs) -> Result<(), Box<dyn std::error::Error>> {
    let engine = open_offline(&args.data_dir, false)?;
    let now = Clock::system().now();
    let plan = engine.export_plan(&args.prefix, now);
    let info = ArchiveInfo {
        writer: format!("durable-streams-server {}", env!("CARGO_PKG_VERSION")),
        created_at: now.0,
        prefix: args.prefix.clone(),
    };
    let bar = ProgressBar::with_draw_target(Some(plan.bytes), ProgressDrawTarget::stderr());
    if args.quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("static template"),
    );
    let to_stdout = args.output.as_os_str() == "-";
    let partial = std::path::PathBuf::from(format!("{}.partial", args.output.display()));
    let out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(File::create(&partial).map_err(|e| format!("{}: {e}", partial.display()))?)
    };
    let mut writer = ArchiveWriter::new(BufWriter::with_capacity(1 << 20, out), &info)?;
    engine.export_archive(&plan, &mut writer, &mut |done| bar.set_position(done))?;
    let (out, trailer) = writer.finish()?;
    let out = out
        .into_inner()
        .map_err(|e| ArchiveError::Io(e.error().to_string()))?;
    drop(out);
    bar.finish_and_clear();
    if !to_stdout {
        File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, &args.output)?;
    }
    eprintln!(
        "exported {} streams ({} records, {} bytes) to {}",
        trailer.streams,
        trailer.records,
        trailer.bytes,
        args.output.display()
    );
    Ok(())
}

/// `import`: verifies the whole archive first (checksums, structure, and in
/// `fail` mode that no path is taken), then imports it stream by stream.
pub fn import(args: &ImportArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mode =
        ConflictMode::parse(&args.on_conflict).ok_or("--on-conflict: skip, replace or fail")?;
    let mut engine = open_offline(&args.data_dir, true)?;
    let open = || -> Result<ArchiveReader<BufReader<File>>, Box<dyn std::error::Error>> {
        let file = File::open(&args.input).map_err(|e| format!("{}: {e}", args.input.display()))?;
        Ok(ArchiveReader::new(BufReader::with_capacity(1 << 20, file))?)
    };
    let conflicts = engine.import_conflicts(open()?)?;
    if mode == ConflictMode::Fail && !conflicts.is_empty() {
        return Err(ArchiveError::Conflict(conflicts).into());
    }
    let summary = engine.import_archive(open()?, mode, Clock::system().now())?;
    for (path, why) in &summary.skipped {
        eprintln!("skipped {path}: {why}");
    }
    eprintln!(
        "imported {} streams ({} replaced, {} skipped; {} records, {} bytes) from {}",
        summary.imported.len(),
        summary.replaced.len(),
        summary.skipped.len(),
        summary.records,
        summary.bytes,
        args.input.display()
    );
    Ok(())
}
