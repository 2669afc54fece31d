//! SQL storage: the connection enum over SQLite and PostgreSQL, the pool, migrations, and the
//! queries of each area (one module per area, queries beside their models).
//!
//! Everything here is blocking Diesel code. It must run on a `SyncArbiter` thread or a blocking
//! pool, never on an async event loop; `actors::db` provides that.

pub mod blocks;
pub mod conversations;
pub mod devices;
pub mod friends;
pub mod groups;
pub mod messages;
pub mod models;
pub mod owners;
pub mod push;
pub mod schema;
pub mod scratch;
pub mod search_index;
pub mod uploads;
pub mod users;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// Migrations for the SQLite backend, embedded at build time.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
/// Migrations for the PostgreSQL backend, embedded at build time (same names as SQLite's).
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// How often [`Database::write_retrying`] retries a transaction that lost a race.
pub const WRITE_RETRIES: u32 = 3;

/// A PostgreSQL session that sits inside a transaction without sending anything for this long
/// is ended by the server (`idle_in_transaction_session_timeout`). Our transactions never wait
/// on the client side, so only a paused or hung process trips it, and the row locks it held are
/// released: a paused owner's half-written batch cannot block the node that takes its
/// conversations over for longer than this ([`owners`]).
pub const PG_IDLE_IN_TRANSACTION_TIMEOUT_MS: u64 = 5_000;

/// How long a SQLite connection waits for a lock held by another connection.
pub const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// SQLite page cache per connection, KiB (the default is 2,000 KiB).
pub const SQLITE_CACHE_KIB: u32 = 16_384;

/// How much of a SQLite file each connection reads through a memory map instead of `pread`
/// calls (address space, not memory: pages are shared with the OS page cache).
pub const SQLITE_MMAP_BYTES: u64 = 1 << 30;

/// Page size of a SQLite file created by this server (SQLite's default is 4,096). The log is
/// page-level: every batch writes each B-tree page it changed whole, and a message changes a
/// few leaves (its conversation's rows in the primary-key and dedup indexes, the summary rows),
/// so smaller pages mean fewer bytes per message (measured at 10,000 msg/s over 200
/// conversations: 4 KiB pages 2.5 GB written in 12 s, 2 KiB 1.4 GB, with a lower ack p99;
/// docs/BENCHMARKS.md). A file keeps the page size it was created with: in WAL mode SQLite
/// ignores this for an existing file.
pub const SQLITE_PAGE_SIZE: u32 = 2_048;

/// How much of the write-ahead log a SQLite file uses before the writer rewinds it (default of
/// [`SqliteTuning::wal_max_bytes`], configuration `database.sqlite_wal_max_mib`).
pub const SQLITE_WAL_MAX_BYTES: u64 = 256 << 20;

/// How often the checkpointer of a SQLite file copies the write-ahead log into the database.
/// Shorter rounds copy (and `fsync`) less at a time, and a write that meets a round's `fsync`
/// waits less: at 10,000 msg/s the 1:1 ack p99 was 4.4–4.6 ms with 125 ms, 5.9–6.7 ms with
/// 250 ms, 7.8–12.1 ms with 1 s; 60 ms gave no more and took more CPU (docs/BENCHMARKS.md).
pub const SQLITE_CHECKPOINT_EVERY: Duration = Duration::from_millis(125);

/// What a committed write of a SQLite file survives: its `PRAGMA synchronous` in WAL mode.
///
/// Both survive a crash of the process (a commit is in the log, handed to the kernel, before
/// `COMMIT` returns) and both keep the file consistent after any crash. They differ in a power
/// loss or a kernel crash, where what the kernel had not yet written to the disk is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `NORMAL`: the log is `fsync`ed at checkpoints only, so after a power loss the database
    /// may come back without the last commits (those since the last checkpoint's `fsync`, at
    /// most a few hundred milliseconds of them with [`SQLITE_CHECKPOINT_EVERY`]).
    Normal,
    /// `FULL`: the log is `fsync`ed at every commit, before `COMMIT` returns: a commit survives a
    /// power loss too (as far as the disk honours `fsync`).
    #[default]
    Full,
}

impl Synchronous {
    /// The value of `PRAGMA synchronous`.
    pub fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// How a SQLite file is run (ignored for PostgreSQL and in-memory databases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteTuning {
    /// The write-ahead log is rewound (written again from its start) once the part in use holds
    /// this many bytes; the log's file is also cut back to this size when it is rewound. Each
    /// rewind stops writes for two `fsync`s (see [`Database::write`]): a larger log means fewer
    /// such stops and more disk. Under steady writes the log's file stays at about this size.
    pub wal_max_bytes: u64,
    /// What a commit survives (`PRAGMA synchronous`, on every connection).
    pub synchronous: Synchronous,
}

impl Default for SqliteTuning {
    fn default() -> Self {
        SqliteTuning { wal_max_bytes: SQLITE_WAL_MAX_BYTES, synchronous: Synchronous::default() }
    }
}

/// A connection to either supported database, chosen at start-up from the URL.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// A PostgreSQL connection (cluster deployments).
    Postgresql(diesel::PgConnection),
    /// An embedded SQLite connection (single node, the default).
    Sqlite(diesel::SqliteConnection),
}

/// Errors of the SQL layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database URL is neither `sqlite://...` nor `postgres://...`.
    #[error("unsupported database url {0:?}: use sqlite://PATH or postgres://...")]
    BadUrl(String),
    /// Connecting failed.
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    /// The pool had no connection to give in time.
    #[error("database pool: {0}")]
    Pool(String),
    /// A query failed.
    #[error("database query: {0}")]
    Query(#[from] diesel::result::Error),
    /// Applying migrations failed.
    #[error("database migration: {0}")]
    Migration(String),
    /// Creating the SQLite directory failed.
    #[error("database file: {0}")]
    Io(#[from] std::io::Error),
}

impl DbError {
    /// True when a concurrent transaction won: a unique violation or a serialization failure.
    pub fn is_lost_race(&self) -> bool {
        self.is_unique_violation()
            || matches!(
                self,
                DbError::Query(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::SerializationFailure,
                    _
                ))
            )
    }

    /// True when the error is a unique-constraint violation (a lost race on an insert).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
        )
    }
}

/// Which backend a URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// `sqlite://PATH` (relative or absolute path; `sqlite://:memory:` for a private in-memory db).
    Sqlite(String),
    /// `postgres://...` or `postgresql://...`, passed to libpq unchanged.
    Postgres(String),
}

impl DbUrl {
    /// Parses a database URL from the config.
    pub fn parse(url: &str) -> Result<Self, DbError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(DbError::BadUrl(url.to_owned()));
            }
            Ok(DbUrl::Sqlite(path.to_owned()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DbUrl::Postgres(url.to_owned()))
        } else {
            Err(DbError::BadUrl(url.to_owned()))
        }
    }

    /// True for SQLite.
    pub fn is_sqlite(&self) -> bool {
        matches!(self, DbUrl::Sqlite(_))
    }

    /// Opens one connection, creating the SQLite file's directory if needed; a SQLite file is
    /// run with the default [`SqliteTuning`].
    pub fn connect(&self) -> Result<AnyConnection, DbError> {
        self.connect_tuned(&SqliteTuning::default())
    }

    /// [`DbUrl::connect`] with the given tuning of a SQLite file.
    pub fn connect_tuned(&self, tuning: &SqliteTuning) -> Result<AnyConnection, DbError> {
        match self {
            DbUrl::Sqlite(path) => {
                if path != ":memory:" {
                    if let Some(dir) = Path::new(path).parent() {
                        if !dir.as_os_str().is_empty() {
                            std::fs::create_dir_all(dir)?;
                        }
                    }
                }
                let mut conn = diesel::SqliteConnection::establish(path)?;
                // busy_timeout first: the journal-mode switch itself may wait for another writer.
                // page_size before journal_mode: it only applies to a file not yet written.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA page_size = {SQLITE_PAGE_SIZE}; \
                     PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; \
                     PRAGMA cache_size = -{SQLITE_CACHE_KIB}; PRAGMA mmap_size = {SQLITE_MMAP_BYTES}; \
                     PRAGMA wal_autocheckpoint = 0;",
                    tuning.synchronous.pragma()
                ))?;
                Ok(AnyConnection::Sqlite(conn))
            }
            DbUrl::Postgres(url) => {
                let mut conn = diesel::PgConnection::establish(url)?;
                conn.batch_execute(&format!(
                    "SET idle_in_transaction_session_timeout = {PG_IDLE_IN_TRANSACTION_TIMEOUT_MS}"
                ))?;
                Ok(AnyConnection::Postgresql(conn))
            }
        }
    }
}

/// Starts the checkpointer of a SQLite file: a thread with its own connection that copies the
/// write-ahead log into the database every [`SQLITE_CHECKPOINT_EVERY`], until `alive` is gone.
///
/// Connections are opened with `wal_autocheckpoint = 0`: otherwise the transaction that crosses
/// the 1,000-page mark runs the checkpoint itself, inside the writers' lock, and the messages of
/// that batch wait for the copy of 4 MB of pages and an `fsync` (measured: the p99 of 1:1 acks).
/// Here passive checkpoints copy the log outside the writers' lock, while writes go on.
///
/// A passive checkpoint under steady writes never catches up, though, and SQLite rewinds the
/// log only when a write starts on a log that has been copied completely. So once the log in use
/// holds `wal_max_bytes`, the checkpointer raises `rewind_due`, and the next write copies the
/// few pages left before its transaction ([`Database::write`]), which then starts the log from
/// its beginning. That costs the writes of that moment two `fsync`s (the log's, then the
/// database's), which is why it happens once per `wal_max_bytes` of log rather than every round
/// (done every round, it made the 1:1 ack p99 at 10,000 msg/s 12.6–14.6 ms instead of
/// 6.8–10.3 ms: docs/BENCHMARKS.md, third round).
///
/// On Linux the thread runs at a lower priority (nice 10): its `fsync`s and page copies are
/// background work, and on a busy machine they should not take a core from the threads that
/// answer clients. It never holds the writers' lock, so nothing waits for it.
fn checkpointer(url: DbUrl, rewind_due: Arc<AtomicBool>, tuning: SqliteTuning, alive: Weak<()>) -> Result<(), DbError> {
    let mut conn = url.connect_tuned(&tuning)?;
    let wal_max_bytes = tuning.wal_max_bytes;
    let frame_bytes = page_size(&mut conn)? + WAL_FRAME_HEADER_BYTES;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            lower_this_threads_priority();
            while alive.upgrade().is_some() {
                std::thread::sleep(SQLITE_CHECKPOINT_EVERY);
                // The second pass copies what was written during the first.
                match passive_checkpoint(&mut conn).and_then(|_| passive_checkpoint(&mut conn)) {
                    Ok(frames) if frames.saturating_mul(frame_bytes) >= wal_max_bytes => {
                        rewind_due.store(true, Ordering::Release);
                    }
                    Ok(_) => {}
                    Err(e) => log::warn!("SQLite checkpoint failed (will retry): {e}"),
                }
            }
        })
        .map_err(DbError::Io)?;
    Ok(())
}

/// Bytes of each frame's header in the write-ahead log (a frame is a header and one page).
const WAL_FRAME_HEADER_BYTES: u64 = 24;

/// The page size of the SQLite file `conn` is on.
fn page_size(conn: &mut AnyConnection) -> Result<u64, DbError> {
    #[derive(QueryableByName)]
    struct PageSize {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        page_size: i64,
    }
    let AnyConnection::Sqlite(c) = conn else { return Ok(0) };
    let rows: Vec<PageSize> = diesel::sql_query("PRAGMA page_size").load(c)?;
    Ok(rows.first().map_or(0, |r| r.page_size.max(0) as u64))
}

/// One passive checkpoint (copies what no reader still needs, waits for nobody); returns the
/// number of frames in the log in use.
fn passive_checkpoint(conn: &mut AnyConnection) -> Result<u64, DbError> {
    #[derive(QueryableByName)]
    struct Checkpoint {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        log: i64,
    }
    let AnyConnection::Sqlite(c) = conn else { return Ok(0) };
    let rows: Vec<Checkpoint> = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").load(c)?;
    // -1 when the database is not in WAL mode.
    Ok(rows.first().map_or(0, |r| r.log.max(0) as u64))
}

/// Lowers the calling thread's scheduling priority to nice 10 (on Linux the nice value is per
/// thread, and "this process" in `setpriority` means the calling thread); where refused it
/// stays as it is.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, 10) {
        log::debug!("could not lower the SQLite checkpointer's priority: {e}");
    }
}

/// r2d2 connection manager for [`AnyConnection`].
#[derive(Debug, Clone)]
pub struct Manager {
    url: DbUrl,
    tuning: SqliteTuning,
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, r2d2::Error> {
        self.url.connect_tuned(&self.tuning).map_err(|e| match e {
            DbError::Connect(c) => r2d2::Error::ConnectionError(c),
            other => r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(other.to_string())),
        })
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1").map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        use diesel::r2d2::R2D2Connection;
        conn.is_broken()
    }
}

/// SQLite's writers' lock and what it guards: the one connection every write transaction of a
/// SQLite file runs on.
///
/// One connection, not any pooled one: SQLite drops a connection's whole page cache when it
/// starts a transaction after another connection wrote, so writes spread over the pool (as they
/// were) each began by emptying a 16 MiB cache and reading its pages back (`pcache1Truncate`,
/// `pcache1Fetch` and `malloc` near the top of the profile at 10,000 msg/s). The writer's cache
/// now stays warm from one batch to the next. (An in-memory database is one per connection, so it
/// keeps writing through its pool of one.)
#[derive(Default)]
struct Writer {
    conn: Option<AnyConnection>,
}

/// A pooled database: the pool plus, for SQLite, the lock that serialises writers.
///
/// SQLite allows one writer at a time and a deferred transaction that upgrades to a write lock
/// can fail with `SQLITE_BUSY` without waiting. All write transactions of this process therefore
/// go through [`Database::write`], which holds a process-wide mutex on SQLite (and nothing on
/// PostgreSQL, where row locks and constraints do the job) and, for a SQLite file, runs on the
/// writer's own connection ([`Writer`]).
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<Manager>,
    url: DbUrl,
    write_lock: Option<Arc<Mutex<Writer>>>,
    /// Writes run on `write_lock`'s connection (a SQLite file), not a pooled one.
    pinned_writer: bool,
    /// Raised by the checkpointer: the next write rewinds the log ([`Database::write`]).
    rewind_due: Arc<AtomicBool>,
    tuning: SqliteTuning,
    /// Raised once the search indexer of a SQLite database runs ([`Database::migrate`]).
    indexer_started: Arc<AtomicBool>,
    /// Held by every clone; the checkpointer and the search indexer stop once the last clone
    /// is gone.
    _alive: Arc<()>,
}

/// A connection borrowed from the pool.
pub type PooledConn = r2d2::PooledConnection<Manager>;

impl Database {
    /// Builds a pool of `size` connections (at least one) and checks that one connection works;
    /// a SQLite file is run with the default [`SqliteTuning`].
    pub fn open(url: &str, size: u32, timeout: Duration) -> Result<Self, DbError> {
        Self::open_tuned(url, size, timeout, SqliteTuning::default())
    }

    /// [`Database::open`] with the given tuning of a SQLite file.
    pub fn open_tuned(url: &str, size: u32, timeout: Duration, tuning: SqliteTuning) -> Result<Self, DbError> {
        let url = DbUrl::parse(url)?;
        // An in-memory SQLite database exists per connection: it needs exactly one.
        let size = if url == DbUrl::Sqlite(":memory:".into()) { 1 } else { size.max(1) };
        let pool = r2d2::Pool::builder()
            .max_size(size)
            .min_idle(Some(1))
            // A `SELECT 1` before every use costs a statement (a round trip on PostgreSQL) per
            // database call; broken connections are still caught by `has_broken` and replaced.
            .test_on_check_out(false)
            .connection_timeout(timeout)
            .build(Manager { url: url.clone(), tuning })
            .map_err(|e| DbError::Pool(e.to_string()))?;
        let write_lock = url.is_sqlite().then(|| Arc::new(Mutex::new(Writer::default())));
        let alive = Arc::new(());
        let file = matches!(&url, DbUrl::Sqlite(path) if path != ":memory:");
        let rewind_due = Arc::new(AtomicBool::new(false));
        if file {
            checkpointer(url.clone(), rewind_due.clone(), tuning, Arc::downgrade(&alive))?;
        }
        Ok(Database {
            pool,
            url,
            write_lock,
            pinned_writer: file,
            rewind_due,
            tuning,
            indexer_started: Arc::new(AtomicBool::new(false)),
            _alive: alive,
        })
    }

    /// The most connections the pool opens.
    pub fn pool_size(&self) -> u32 {
        self.pool.max_size()
    }

    /// True for a SQLite file: every write runs on one connection inside this process, takes
    /// well under a millisecond when nothing else waits, and never waits on a network, so a
    /// caller may run it on its own thread instead of a worker's ([`Database::write`] blocks
    /// for as long as it takes, including a log rewind's two `fsync`s).
    pub fn local_writes(&self) -> bool {
        self.pinned_writer
    }

    /// The backend in use.
    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// Borrows a connection.
    pub fn get(&self) -> Result<PooledConn, DbError> {
        self.pool.get().map_err(|e| DbError::Pool(e.to_string()))
    }

    /// Applies pending migrations for the backend in use; returns the names applied. On SQLite
    /// it then starts the search indexer ([`search_index`]), once per database.
    pub fn migrate(&self) -> Result<Vec<String>, DbError> {
        let applied = {
            let mut conn = self.get()?;
            let _guard = self.lock_writes();
            let applied = match &mut *conn {
                AnyConnection::Sqlite(c) => {
                    c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.iter().map(|m| m.to_string()).collect())
                }
                AnyConnection::Postgresql(c) => {
                    c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.iter().map(|m| m.to_string()).collect())
                }
            };
            applied.map_err(|e| DbError::Migration(e.to_string()))?
        };
        if self.url.is_sqlite() && !self.indexer_started.swap(true, Ordering::AcqRel) {
            // The indexer's own handle must not keep the database alive: it holds a fresh
            // `_alive` and watches this one's.
            let handle = Database { _alive: Arc::new(()), ..self.clone() };
            search_index::spawn_indexer(handle, Arc::downgrade(&self._alive))?;
        }
        Ok(applied)
    }

    /// Runs `f` on a pooled connection: reads only. Every write, even a single statement, goes
    /// through [`Database::write`]: on SQLite a write outside the writers' lock can make a
    /// concurrent write transaction fail with `SQLITE_BUSY` ("database is locked").
    pub fn read<R>(&self, f: impl FnOnce(&mut AnyConnection) -> Result<R, DbError>) -> Result<R, DbError> {
        let mut conn = self.get()?;
        f(&mut conn)
    }

    /// Runs `f` in a write transaction (serialised with other writers on SQLite).
    ///
    /// On a SQLite file, when the checkpointer found the log over
    /// [`SqliteTuning::wal_max_bytes`], this write first copies what is left of the log into the
    /// database (a passive checkpoint on the writer's connection: no other write can run, so it
    /// completes unless a reader still needs old pages), and its transaction then starts the log
    /// from its beginning.
    pub fn write<R>(&self, f: impl FnOnce(&mut AnyConnection) -> Result<R, DbError>) -> Result<R, DbError> {
        let Some(mut writer) = self.pinned_writer.then(|| self.lock_writes()).flatten() else {
            // The pool's connection first, then the lock (never wait for one holding the other).
            let mut conn = self.get()?;
            let _guard = self.lock_writes();
            return AnyConnection::transaction(&mut conn, f);
        };
        use diesel::r2d2::R2D2Connection;
        // A transaction left open (a panic inside one, a failed rollback): start on a new one.
        if writer.conn.as_mut().is_some_and(|c| c.is_broken()) {
            writer.conn = None;
        }
        let conn = match &mut writer.conn {
            Some(c) => c,
            empty => {
                let mut c = self.url.connect_tuned(&self.tuning)?;
                // The writer's connection is the one that rewinds the log: it also cuts the
                // log's file back when it has grown past the limit.
                c.batch_execute(&format!("PRAGMA journal_size_limit = {}", self.tuning.wal_max_bytes))?;
                empty.insert(c)
            }
        };
        if self.rewind_due.swap(false, Ordering::AcqRel) {
            // A failure only delays the rewind to a later round; the write goes on.
            if let Err(e) = passive_checkpoint(conn) {
                log::warn!("SQLite checkpoint before rewinding the log failed: {e}");
            }
        }
        AnyConnection::transaction(conn, f)
    }

    /// Like [`Database::write`], but retries (up to `WRITE_RETRIES` times) when the transaction
    /// lost a race to a concurrent one: a unique violation or a serialization failure. `f` must
    /// re-read whatever it decides on, so a retry sees the winner's rows.
    pub fn write_retrying<R>(&self, f: impl Fn(&mut AnyConnection) -> Result<R, DbError>) -> Result<R, DbError> {
        let mut attempt = 0;
        loop {
            match self.write(&f) {
                Err(e) if attempt < WRITE_RETRIES && e.is_lost_race() => attempt += 1,
                other => return other,
            }
        }
    }

    fn lock_writes(&self) -> Option<std::sync::MutexGuard<'_, Writer>> {
        // A poisoned lock only means another writer panicked; the database itself is consistent.
        self.write_lock.as_ref().map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Checks that the database answers (`/readyz`).
    pub fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.get()?;
        conn.batch_execute("SELECT 1")?;
        Ok(())
    }
}
