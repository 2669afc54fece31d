//! The SQLite write-ahead log is checkpointed and rewound by the database's checkpointer thread,
//! also while writes never pause (connections run with `wal_autocheckpoint = 0`, so nothing else
//! would do it): the log must not grow without bound under steady load.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use schema::db::scratch::ScratchDb;
use schema::db::Database;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The checkpoint sequence number in the WAL header (bytes 12..16, big-endian): SQLite bumps it
/// each time it rewinds the log.
fn wal_generation(wal: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(wal)?;
    let head: [u8; 4] = bytes.get(12..16).ok_or("short WAL header")?.try_into()?;
    Ok(u32::from_be_bytes(head))
}

#[test]
fn the_log_is_rewound_while_writes_go_on() -> TestResult {
    let scratch = ScratchDb::sqlite();
    let db = Database::open(&scratch.url, 2, Duration::from_secs(5))?;
    db.migrate()?;
    let path = scratch.url.strip_prefix("sqlite://").ok_or("not a sqlite url")?.to_owned();
    let wal = format!("{path}-wal");
    db.write(|c| Ok(c.batch_execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, pad BLOB NOT NULL)")?))?;
    let first = wal_generation(&wal)?;

    // Back-to-back write transactions for two seconds (many checkpoint rounds of 250 ms).
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
    Ok(())
}
