//! Snapshot IO: the `snapshot/v1` format (DESIGN.md §3.1) and the code that writes and reads
//! it at 100 ms resolution for months of data.
//!
//! - [`record`]: the on-disk line types ([`SnapshotRecord`], [`Marker`], [`Line`]), their
//!   exact JSON form, the derivation of asks/mid/spread from a book
//!   ([`SnapshotRecord::from_book`]) and the invariants checked on read and write.
//! - [`writer`]: [`SnapshotWriter`], hourly (configurable) rotated files, each a sequence of
//!   gzip members flushed every few seconds, so a killed process loses at most one flush
//!   interval.
//! - [`reader`]: [`SnapshotReader`], a streaming reader over a glob or paths that survives
//!   truncated/corrupt members and bad lines, and reports exactly what it skipped
//!   ([`ReadReport`]).
//! - [`columnar`]: [`load_columnar`], a parallel loader into compact per-market columns with
//!   gap/resync segment boundaries ([`SnapshotSet`], [`MarketSeries`]) for training and replay.

pub mod columnar;
pub mod reader;
pub mod record;
pub mod writer;

pub use columnar::{
    load_columnar, load_columnar_glob, ColumnarOptions, Ladders, MarkerRow, MarketSeries,
    MergeStats, Segment, SegmentCause, SnapshotSet, NO_COUNT, NO_PRICE,
};
pub use reader::{
    resolve_glob, FileCounts, FileReader, FileReport, Problem, ProblemKind, ReadError, ReadOptions,
    ReadReport, SnapshotReader, Truncation,
};
pub use record::{
    mid_price, parse_line, Level, Line, LineError, Marker, MarkerKind, ParsedLine, RecordError,
    SnapshotRecord,
};
pub use writer::{
    parse_file_name, snapshot_file_name, SnapshotFileName, SnapshotWriter, WriteError,
    WriteSummary, WriterOptions,
};
