//! The `SqlStore` actor: Diesel on `SyncArbiter` threads, and [`Db`], the async handle to it.
//!
//! Diesel blocks, so it never runs on an event loop. Callers hand the actor a closure over a
//! connection; one of the arbiter's threads runs it and the answer comes back as a future.

use actix::prelude::*;
use schema::db::{AnyConnection, Database, DbError};

/// A Diesel worker: one of the `SyncArbiter`'s threads, sharing the connection pool.
pub struct SqlStore {
    db: Database,
}

impl Actor for SqlStore {
    type Context = SyncContext<Self>;
}

type Job<R> = Box<dyn FnOnce(&Database) -> Result<R, DbError> + Send>;

/// Run a closure against the database on a worker thread.
pub struct Exec<R> {
    job: Job<R>,
}

impl<R: Send + 'static> Message for Exec<R> {
    type Result = Result<R, DbError>;
}

impl<R: Send + 'static> Handler<Exec<R>> for SqlStore {
    type Result = Result<R, DbError>;

    fn handle(&mut self, msg: Exec<R>, _: &mut SyncContext<Self>) -> Self::Result {
        (msg.job)(&self.db)
    }
}

/// The async handle to the SQL database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    addr: Addr<SqlStore>,
    db: Database,
}

impl Db {
    /// Starts `threads` Diesel workers over `db`'s pool.
    pub fn start(db: Database, threads: usize) -> Self {
        let shared = db.clone();
        let addr = SyncArbiter::start(threads.max(1), move || SqlStore { db: shared.clone() });
        Db { addr, db }
    }

    /// The underlying pool (for start-up work that may block, such as migrations).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// True when both handles reach the same database (so one transaction can span both).
    pub fn same_database(&self, other: &Db) -> bool {
        self.db.url() == other.db.url()
    }

    /// Runs `f` on a worker with a pooled connection: reads only (writes go through
    /// [`Db::write`]).
    pub async fn read<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<R, DbError> + Send + 'static,
    {
        self.exec(Box::new(move |db| db.read(f))).await
    }

    /// Runs `f` in a write transaction on a worker.
    pub async fn write<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<R, DbError> + Send + 'static,
    {
        self.exec(Box::new(move |db| db.write(f))).await
    }

    /// Runs `f` in a write transaction, retrying when it lost a race to a concurrent one.
    pub async fn write_retrying<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: Fn(&mut AnyConnection) -> Result<R, DbError> + Send + 'static,
    {
        self.exec(Box::new(move |db| db.write_retrying(f))).await
    }

    /// Checks that a connection can be had and answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.exec(Box::new(|db| db.ping())).await
    }

    async fn exec<R: Send + 'static>(&self, job: Job<R>) -> Result<R, DbError> {
        self.addr.send(Exec { job }).await.map_err(|e| DbError::Pool(format!("database workers unavailable: {e}")))?
    }
}
