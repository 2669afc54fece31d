//! How a SQLite file is run: the write-ahead log is checkpointed by the database's checkpointer
//! thread and rewound by the writer once it passes its limit, also while writes never pause
//! (connections run with `wal_autocheckpoint = 0`, so nothing else would do it): the log must not
//! grow without bound under steady load. Every write transaction runs on one connection. A new
//! file gets [`SQLITE_PAGE_SIZE`] pages; an existing file keeps its own.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use schema::db::scratch::ScratchDb;
use schema::db::{Database, DbError, SqliteTuning, Synchronous, SQLITE_CHECKPOINT_EVERY, SQLITE_PAGE_SIZE};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The checkpoint sequence number in the WAL header (bytes 12..16, big-endian): SQLite bumps it
/// each time it rewinds the log.
fn wal_generation(wal: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(wal)?;
    let head: [u8; 4] = bytes.get(12..16).ok_or("short WAL header")?.try_into()?;
    Ok(u32::from_be_bytes(head))
}

#[test]
fn the_log_is_rewound_while_writes_go_on_and_cut_back_after() -> TestResult {
    let scratch = ScratchDb::sqlite();
    let limit: u64 = 1 << 20;
    let db = Database::open_tuned(
        &scratch.url,
        2,
        Duration::from_secs(5),
        SqliteTuning { wal_max_bytes: limit, ..SqliteTuning::default() },
    )?;
    db.migrate()?;
    let path = scratch.url.strip_prefix("sqlite://").ok_or("not a sqlite url")?.to_owned();
    let wal = format!("{path}-wal");
    db.write(|c| Ok(c.batch_execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, pad BLOB NOT NULL)")?))?;
    let first = wal_generation(&wal)?;

    // Back-to-back write transactions for two seconds (sixteen checkpoint rounds): a passive
    // checkpoint never catches up with them, so only the writer's own rewind (once the log in
    // use passes `limit`) starts the log again.
    let blob = "x".repeat(2_000);
    let end = Instant::now() + Duration::from_secs(2);
    let mut generations = vec![first];
    let mut n = 0u64;
    while Instant::now() < end {
        let sql = format!("INSERT INTO filler (pad) VALUES ('{blob}'); DELETE FROM filler WHERE id < {n};");
        db.write(move |c| Ok(c.batch_execute(&sql)?))?;
        n += 1;
        if n.is_multiple_of(50) {
            generations.push(wal_generation(&wal)?);
        }
    }
    let last = *generations.last().ok_or("no samples")?;
    assert!(n > 100, "only {n} transactions in 2 s");
    assert!(last >= first + 2, "the log was rewound {} times in {n} transactions: {generations:?}", last - first);

    // Once writes pause, the checkpointer copies the whole log, the next write starts it again
    // and cuts its file back to the limit.
    std::thread::sleep(SQLITE_CHECKPOINT_EVERY * 3);
    db.write(|c| Ok(c.batch_execute("INSERT INTO filler (pad) VALUES ('after')")?))?;
    let size = std::fs::metadata(&wal)?.len();
    assert!(size <= limit, "the log's file is {size} bytes after a rewind, over the {limit} byte limit");
    assert!(wal_generation(&wal)? > last, "no rewind after the pause");
    Ok(())
}

/// A migrated database on the SQLite file `url` with a pool of `size`.
fn migrated(url: &str, size: u32) -> Result<Database, DbError> {
    let db = Database::open(url, size, Duration::from_secs(5))?;
    db.migrate()?;
    Ok(db)
}

/// The integers in column `n` of `sql`'s rows, read on `conn`.
fn ints(conn: &mut schema::db::AnyConnection, sql: &str) -> Result<Vec<i64>, DbError> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    Ok(diesel::sql_query(sql).load::<N>(conn)?.into_iter().map(|r| r.n).collect())
}

fn page_size(db: &Database) -> Result<Vec<i64>, DbError> {
    db.read(|c| ints(c, "SELECT page_size AS n FROM pragma_page_size()"))
}

#[test]
fn a_new_file_gets_small_pages_and_an_existing_file_keeps_its_own() -> TestResult {
    let fresh = ScratchDb::sqlite();
    let db = migrated(&fresh.url, 2)?;
    assert_eq!(page_size(&db)?, vec![i64::from(SQLITE_PAGE_SIZE)]);

    // A file made by an earlier version, with SQLite's default 4 KiB pages, in WAL mode.
    let old = ScratchDb::sqlite();
    let path = old.url.strip_prefix("sqlite://").ok_or("not a sqlite url")?;
    {
        use diesel::Connection;
        let mut c = diesel::SqliteConnection::establish(path)?;
        c.batch_execute(
            "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE before_upgrade (id INTEGER);",
        )?;
    }
    let db = migrated(&old.url, 2)?;
    assert_eq!(page_size(&db)?, vec![4096]);
    db.write(|c| Ok(c.batch_execute("INSERT INTO before_upgrade (id) VALUES (1)")?))?;
    Ok(())
}

#[test]
fn every_write_runs_on_one_connection_from_any_thread() -> TestResult {
    let scratch = ScratchDb::sqlite();
    let db = migrated(&scratch.url, 4)?;
    // A TEMP table exists only on the connection that made it: writes from other threads see it
    // only if they run on that same connection.
    db.write(|c| Ok(c.batch_execute("CREATE TEMP TABLE writer_only (n INTEGER NOT NULL)")?))?;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || -> Result<(), DbError> {
                for i in 0..50 {
                    db.write(move |c| {
                        Ok(c.batch_execute(&format!("INSERT INTO writer_only (n) VALUES ({})", t * 100 + i))?)
                    })?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "writer thread panicked")??;
    }
    // A failed transaction is rolled back and the connection goes on.
    let failed: Result<(), DbError> = db.write(|c| {
        c.batch_execute("INSERT INTO writer_only (n) VALUES (-1)")?;
        Ok(c.batch_execute("INSERT INTO no_such_table (n) VALUES (1)")?)
    });
    assert!(failed.is_err());
    let counts = db.write(|c| {
        ints(
            c,
            "SELECT COUNT(*) AS n FROM writer_only WHERE n >= 0 UNION ALL SELECT COUNT(*) FROM writer_only WHERE n < 0",
        )
    })?;
    assert_eq!(counts, vec![200, 0], "200 rows from four threads, none from the failed transaction");
    Ok(())
}

#[test]
fn a_panic_inside_a_write_leaves_nothing_behind_and_the_next_write_works() -> TestResult {
    let scratch = ScratchDb::sqlite();
    let db = migrated(&scratch.url, 2)?;
    db.write(|c| Ok(c.batch_execute("CREATE TABLE survivors (n INTEGER NOT NULL)")?))?;
    let d = db.clone();
    let panicked = std::thread::spawn(move || {
        let _ = d.write(|c| -> Result<(), DbError> {
            c.batch_execute("INSERT INTO survivors (n) VALUES (1)")?;
            panic!("a bug inside a write transaction");
        });
    })
    .join();
    assert!(panicked.is_err(), "the write panicked");
    // The writer's connection was left inside that transaction: it is replaced, the insert is
    // gone, and writes go on.
    db.write(|c| Ok(c.batch_execute("INSERT INTO survivors (n) VALUES (2)")?))?;
    assert_eq!(db.read(|c| ints(c, "SELECT n FROM survivors ORDER BY n"))?, vec![2]);
    Ok(())
}

/// `PRAGMA synchronous` of the connection `f` runs on.
fn synchronous_of(c: &mut schema::db::AnyConnection) -> Result<i64, DbError> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Sync {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        synchronous: i64,
    }
    let rows: Vec<Sync> = diesel::sql_query("PRAGMA synchronous").load(c)?;
    Ok(rows.first().map_or(-1, |r| r.synchronous))
}

#[test]
fn every_connection_runs_at_the_configured_durability() -> TestResult {
    // SQLite's codes: 1 = NORMAL, 2 = FULL.
    for (level, code) in [(Synchronous::Normal, 1), (Synchronous::Full, 2)] {
        let scratch = ScratchDb::sqlite();
        let tuning = SqliteTuning { synchronous: level, ..SqliteTuning::default() };
        let db = Database::open_tuned(&scratch.url, 2, Duration::from_secs(5), tuning)?;
        assert_eq!(db.read(synchronous_of)?, code, "{level:?}: a pooled connection");
        assert_eq!(db.write(synchronous_of)?, code, "{level:?}: the writer's connection");
    }
    assert_eq!(SqliteTuning::default().synchronous, Synchronous::Full, "the default survives a power loss");
    Ok(())
}
