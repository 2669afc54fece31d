//! The blob store: where the bytes of uploads live, behind one trait ([`BlobStore`]) with two
//! implementations, chosen by `uploads.backend`:
//!
//! - [`LocalBlobStore`] (`local`, the embedded default): files under `uploads.dir`, two
//!   directory levels by the key's first characters; a put writes a temporary file in
//!   `<dir>/.tmp` and renames it into place, so a reader never sees half a blob.
//! - [`S3BlobStore`] (`s3`): one object per key in a bucket of an S3-compatible service
//!   (`object_store`'s AWS client), written by multipart upload as it streams in.
//!
//! A put is streamed and capped: the store stops reading, throws away what it wrote and answers
//! [`BlobError::TooLarge`] as soon as more than `max` bytes came. Keys are made by the server
//! (`[A-Za-z0-9._-]`, not starting with a dot); the facts of an upload (size, type, who may read
//! it) are in the SQL table `uploads`, not here.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::{BoxStream, LocalBoxStream};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// The part size of S3 multipart uploads (S3's minimum for every part but the last).
const S3_PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts of one S3 upload in flight at once.
const S3_PARTS_IN_FLIGHT: usize = 2;
/// The size of the chunks a local blob is read in.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The body was over the cap of the put.
    #[error("the body is over {0} bytes")]
    TooLarge(u64),
    /// No blob with that key.
    #[error("no such blob")]
    NotFound,
    /// The body's source failed (the client's connection, for an upload).
    #[error("reading the body: {0}")]
    Body(String),
    /// A key the server would not make.
    #[error("bad blob key {0:?}")]
    BadKey(String),
    /// The disk failed.
    #[error("blob store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The object store failed.
    #[error("object store: {0}")]
    Remote(String),
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound,
            other => BlobError::Remote(other.to_string()),
        }
    }
}

/// The chunks of a body being put.
pub type Chunks<'a> = LocalBoxStream<'a, Result<Bytes, BlobError>>;

/// A blob being read: its whole size and the bytes asked for.
pub struct Blob {
    /// The size of the whole blob, bytes.
    pub size: u64,
    /// The bytes of the range asked for (or of the whole blob).
    pub body: BoxStream<'static, Result<Bytes, BlobError>>,
}

/// Where upload bytes are kept.
pub trait BlobStore: Send + Sync {
    /// Stores `body` under `key` (replacing a blob of that key), reading at most `max` bytes:
    /// past that nothing is kept and the answer is [`BlobError::TooLarge`]. Answers the size.
    fn put<'a>(&'a self, key: &'a str, body: Chunks<'a>, max: u64) -> LocalBoxFuture<'a, Result<u64, BlobError>>;

    /// Reads the blob `key`, the bytes of `range` only when one is given (it must lie inside
    /// the blob; the caller checks it against the size it knows).
    fn get<'a>(&'a self, key: &'a str, range: Option<Range<u64>>) -> LocalBoxFuture<'a, Result<Blob, BlobError>>;

    /// Deletes the blob `key`; deleting one that is not there is no error.
    fn delete<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<(), BlobError>>;
}

/// Stores `bytes` whole under `key` (a thumbnail, a processed image).
pub async fn put_bytes(store: &dyn BlobStore, key: &str, bytes: Bytes) -> Result<u64, BlobError> {
    let max = bytes.len() as u64;
    store.put(key, futures_util::stream::once(async move { Ok(bytes) }).boxed_local(), max).await
}

/// Reads the blob `key` whole into memory (tests, small blobs).
pub async fn get_bytes(store: &dyn BlobStore, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, BlobError> {
    let blob = store.get(key, range).await?;
    let mut out = Vec::new();
    let mut body = blob.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn check_key(key: &str) -> Result<(), BlobError> {
    let ok = !key.is_empty()
        && key.len() <= 200
        && !key.starts_with('.')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(BlobError::BadKey(key.to_owned()))
    }
}

/// Blobs as files under a directory.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    dir: PathBuf,
}

impl LocalBlobStore {
    /// A store under `dir` (made, with its temporary directory, when missing).
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join(".tmp"))?;
        Ok(LocalBlobStore { dir })
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        check_key(key)?;
        let shard: String = key.chars().take(2).collect();
        Ok(self.dir.join(shard).join(key))
    }

    async fn write(&self, key: &str, mut body: Chunks<'_>, max: u64) -> Result<u64, BlobError> {
        let path = self.path(key)?;
        let tmp = self.dir.join(".tmp").join(format!("{key}.{}", crate::auth::new_token()));
        let mut file = tokio::fs::File::create(&tmp).await?;
        let written: Result<u64, BlobError> = async {
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(BlobError::TooLarge(max));
                }
                file.write_all(&chunk).await?;
            }
            file.sync_all().await?;
            Ok(size)
        }
        .await;
        drop(file);
        let size = match written {
            Ok(size) => size,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        if let Err(e) = tokio::fs::rename(&tmp, &path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
        Ok(size)
    }

    async fn read(&self, key: &str, range: Option<Range<u64>>) -> Result<Blob, BlobError> {
        let path = self.path(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata().await?.len();
        let range = range.unwrap_or(0..size);
        if range.start > range.end || range.end > size {
            return Err(BlobError::Body(format!("range {range:?} outside a blob of {size} bytes")));
        }
        file.seek(std::io::SeekFrom::Start(range.start)).await?;
        let left = range.end - range.start;
        let body = futures_util::stream::try_unfold((file, left), |(mut file, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let mut buf = vec![0u8; READ_CHUNK_BYTES.min(left as usize)];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Err(BlobError::Body("the blob ended early".into()));
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), (file, left - n as u64))))
        })
        .boxed();
        Ok(Blob { size, body })
    }
}

impl BlobStore for LocalBlobStore {
    fn put<'a>(&'a self, key: &'a str, body: Chunks<'a>, max: u64) -> LocalBoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(self.write(key, body, max))
    }

    fn get<'a>(&'a self, key: &'a str, range: Option<Range<u64>>) -> LocalBoxFuture<'a, Result<Blob, BlobError>> {
        Box::pin(self.read(key, range))
    }

    fn delete<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            match tokio::fs::remove_file(self.path(key)?).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// How to reach an S3-compatible bucket (`[uploads.s3]`).
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// The service's URL (`https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`);
    /// empty: AWS's own for the region.
    pub endpoint: String,
    /// The bucket (it must exist).
    pub bucket: String,
    /// The region.
    pub region: String,
    /// The access key id (empty: from the environment, `AWS_ACCESS_KEY_ID`).
    pub access_key_id: String,
    /// The secret access key (empty: from the environment).
    pub secret_access_key: String,
    /// Allow an `http://` endpoint (a service on the same host or network).
    pub allow_http: bool,
}

/// Blobs as objects of an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    store: Arc<object_store::aws::AmazonS3>,
}

impl S3BlobStore {
    /// A client of the bucket (path-style requests, so any S3-compatible service works); no
    /// request is made yet.
    pub fn new(o: &S3Options) -> Result<Self, BlobError> {
        let mut b = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&o.bucket)
            .with_region(&o.region)
            .with_allow_http(o.allow_http)
            .with_virtual_hosted_style_request(false);
        if !o.endpoint.is_empty() {
            b = b.with_endpoint(&o.endpoint);
        }
        if !o.access_key_id.is_empty() {
            b = b.with_access_key_id(&o.access_key_id);
        }
        if !o.secret_access_key.is_empty() {
            b = b.with_secret_access_key(&o.secret_access_key);
        }
        Ok(S3BlobStore { store: Arc::new(b.build()?) })
    }

    fn path(key: &str) -> Result<object_store::path::Path, BlobError> {
        check_key(key)?;
        Ok(object_store::path::Path::from(key))
    }

    async fn write(&self, key: &str, mut body: Chunks<'_>, max: u64) -> Result<u64, BlobError> {
        use object_store::ObjectStore;
        let path = Self::path(key)?;
        // Small bodies go in one request; a body that fills a part goes by multipart upload.
        let mut first = Vec::new();
        let mut size = 0u64;
        let mut rest_started = false;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            if size > max {
                return Err(BlobError::TooLarge(max));
            }
            first.extend_from_slice(&chunk);
            if first.len() >= S3_PART_BYTES {
                rest_started = true;
                break;
            }
        }
        if !rest_started {
            self.store.put(&path, Bytes::from(first).into()).await?;
            return Ok(size);
        }
        let upload = self.store.put_multipart(&path).await?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, S3_PART_BYTES);
        w.write(&first);
        let result: Result<(), BlobError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(BlobError::TooLarge(max));
                }
                w.wait_for_capacity(S3_PARTS_IN_FLIGHT).await?;
                w.write(&chunk);
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                w.finish().await?;
                Ok(size)
            }
            Err(e) => {
                if let Err(abort) = w.abort().await {
                    log::warn!("aborting the multipart upload of {key}: {abort}");
                }
                Err(e)
            }
        }
    }

    async fn read(&self, key: &str, range: Option<Range<u64>>) -> Result<Blob, BlobError> {
        use object_store::ObjectStore;
        let path = Self::path(key)?;
        let empty = range.as_ref().is_some_and(|r| r.start >= r.end);
        let opts = object_store::GetOptions {
            range: range.filter(|r| r.start < r.end).map(object_store::GetRange::Bounded),
            ..Default::default()
        };
        let got = self.store.get_opts(&path, opts).await?;
        let size = got.meta.size;
        let body = if empty {
            futures_util::stream::empty().boxed()
        } else {
            got.into_stream().map_err(BlobError::from).boxed()
        };
        Ok(Blob { size, body })
    }
}

impl BlobStore for S3BlobStore {
    fn put<'a>(&'a self, key: &'a str, body: Chunks<'a>, max: u64) -> LocalBoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(self.write(key, body, max))
    }

    fn get<'a>(&'a self, key: &'a str, range: Option<Range<u64>>) -> LocalBoxFuture<'a, Result<Blob, BlobError>> {
        Box::pin(self.read(key, range))
    }

    fn delete<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<(), BlobError>> {
        use object_store::ObjectStore;
        Box::pin(async move {
            match self.store.delete(&Self::path(key)?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }
}
