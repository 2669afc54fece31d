//! Throw-away databases for tests and benchmarks: a fresh PostgreSQL database or SQLite file,
//! dropped when the guard goes. Each test gets its own, so tests run in parallel and never see
//! each other's rows or leftovers of earlier runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::DbError;

/// The server-level PostgreSQL URL tests use unless `IM_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}_{}_{}", std::process::id(), nanos % 1_000_000_000_000, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A scratch database; dropped (PostgreSQL) or deleted (SQLite) with the guard.
#[derive(Debug)]
pub struct ScratchDb {
    /// The URL to give the server (`sqlite://...` or `postgres://...`).
    pub url: String,
    admin_url: Option<String>,
    name: String,
}

impl ScratchDb {
    /// A fresh SQLite file under the system temp directory.
    pub fn sqlite() -> Self {
        let name = format!("im_test_{}.db", unique_suffix());
        let path = std::env::temp_dir().join(&name);
        ScratchDb { url: format!("sqlite://{}", path.display()), admin_url: None, name: path.display().to_string() }
    }

    /// A fresh PostgreSQL database on the server of `IM_TEST_POSTGRES_URL` (or the default).
    pub fn postgres() -> Result<Self, DbError> {
        let admin = std::env::var("IM_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned());
        let name = format!("im_test_{}", unique_suffix());
        let mut conn = diesel::PgConnection::establish(&admin)?;
        conn.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Ok(ScratchDb { url: format!("{base}/{name}"), admin_url: Some(admin), name })
    }

    /// A scratch database of the named backend (`sqlite` or `postgres`).
    pub fn of(backend: &str) -> Result<Self, DbError> {
        match backend {
            "postgres" => Self::postgres(),
            "sqlite" => Ok(Self::sqlite()),
            other => Err(DbError::BadUrl(other.to_owned())),
        }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        match &self.admin_url {
            Some(admin) => {
                if let Ok(mut conn) = diesel::PgConnection::establish(admin) {
                    let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
                }
            }
            None => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", self.name));
                }
            }
        }
    }
}
