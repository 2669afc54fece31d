//! The blob store's contract, one suite run against both implementations: the local disk (a
//! temporary directory) and S3 (a real S3-protocol server, moto, at `IM_TEST_S3_URL`; each test
//! makes its own bucket). Then one API test with `uploads.backend = "s3"`.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;
use server::blob::{get_bytes, put_bytes, BlobError, BlobStore, LocalBlobStore, S3BlobStore, S3Options};
use server::config::{BlobBackend, Settings};

use crate::helpers::{TestApp, TestResult};
use crate::ws_client::{conv_of, WsClient};

fn s3_url() -> String {
    std::env::var("IM_TEST_S3_URL").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
}

/// A new, empty bucket on the S3 server.
async fn bucket() -> TestResult<String> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!("im-test-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let resp = awc::Client::default().put(format!("{}/{name}", s3_url())).send().await?;
    assert!(resp.status().is_success(), "creating bucket {name}: {}", resp.status());
    Ok(name)
}

fn s3_options(bucket: &str) -> S3Options {
    S3Options {
        endpoint: s3_url(),
        bucket: bucket.to_owned(),
        region: "us-east-1".into(),
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        allow_http: true,
    }
}

/// The body as `n` chunks of `size` bytes, each a different byte.
fn chunks(n: usize, size: usize) -> (Vec<u8>, server::blob::Chunks<'static>) {
    let parts: Vec<Bytes> = (0..n).map(|i| Bytes::from(vec![(i % 251) as u8; size])).collect();
    let whole = parts.iter().flat_map(|p| p.iter().copied()).collect();
    (whole, futures_util::stream::iter(parts.into_iter().map(Ok)).boxed_local())
}

async fn suite(store: &dyn BlobStore) -> TestResult {
    // A streamed put, read whole and in ranges.
    let (whole, body) = chunks(10, 1000);
    assert_eq!(store.put("abc123", body, 10_000).await?, 10_000);
    assert_eq!(get_bytes(store, "abc123", None).await?, whole);
    assert_eq!(get_bytes(store, "abc123", Some(1500..2500)).await?, whole[1500..2500]);
    assert_eq!(get_bytes(store, "abc123", Some(9990..10_000)).await?, whole[9990..]);
    assert_eq!(store.get("abc123", None).await?.size, 10_000);
    // Over the cap: refused, and nothing kept under the key.
    let (_, body) = chunks(11, 1000);
    assert!(matches!(store.put("toobig", body, 10_000).await, Err(BlobError::TooLarge(10_000))));
    assert!(matches!(store.get("toobig", None).await, Err(BlobError::NotFound)));
    // A body failing midway keeps nothing either.
    let failing =
        futures_util::stream::iter(vec![Ok(Bytes::from_static(b"part")), Err(BlobError::Body("gone".into()))]);
    assert!(store.put("broken", failing.boxed_local(), 100).await.is_err());
    assert!(matches!(store.get("broken", None).await, Err(BlobError::NotFound)));
    // Larger than one S3 part (multipart upload).
    let (big, body) = chunks(13, 512 * 1024);
    assert_eq!(store.put("big.one", body, 8 << 20).await?, big.len() as u64);
    assert_eq!(get_bytes(store, "big.one", None).await?, big);
    assert_eq!(get_bytes(store, "big.one", Some(6_000_000..6_000_010)).await?, big[6_000_000..6_000_010]);
    let (_, body) = chunks(13, 512 * 1024);
    assert!(matches!(store.put("big.two", body, 6 << 20).await, Err(BlobError::TooLarge(_))));
    assert!(matches!(store.get("big.two", None).await, Err(BlobError::NotFound)));
    // Replace, delete (twice), missing keys, bad keys.
    put_bytes(store, "abc123", Bytes::from_static(b"new")).await?;
    assert_eq!(get_bytes(store, "abc123", None).await?, b"new");
    store.delete("abc123").await?;
    store.delete("abc123").await?;
    assert!(matches!(store.get("abc123", None).await, Err(BlobError::NotFound)));
    assert!(matches!(store.get("nothing", None).await, Err(BlobError::NotFound)));
    for bad in ["../x", ".hidden", "a/b", ""] {
        assert!(matches!(put_bytes(store, bad, Bytes::from_static(b"x")).await, Err(BlobError::BadKey(_))), "{bad}");
    }
    Ok(())
}

#[actix_rt::test]
async fn local_blob_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    suite(&LocalBlobStore::new(dir.path())?).await?;
    // Nothing is left in the temporary directory.
    assert_eq!(std::fs::read_dir(dir.path().join(".tmp"))?.count(), 0);
    Ok(())
}

#[actix_rt::test]
async fn s3_blob_store() -> TestResult {
    let b = bucket().await?;
    suite(&S3BlobStore::new(&s3_options(&b))?).await
}

#[actix_rt::test]
async fn s3_backend_serves_uploads() -> TestResult {
    let b = bucket().await?;
    let app = TestApp::spawn_tuned("sqlite", move |s: &mut Settings| {
        s.uploads.backend = BlobBackend::S3;
        let o = s3_options(&b);
        s.uploads.s3.endpoint = o.endpoint;
        s.uploads.s3.bucket = o.bucket;
        s.uploads.s3.access_key_id = o.access_key_id;
        s.uploads.s3.secret_access_key = o.secret_access_key;
        s.uploads.s3.allow_http = true;
    })
    .await?;
    let a = app.user("alice").await?;
    let bob = app.user("bob").await?;
    app.befriend(&a, &bob).await?;
    let conv = conv_of(&a, &bob);
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(400, 100, image::Rgb([1, 2, 3])).write_to(&mut png, image::ImageFormat::Png)?;
    let (s, att) =
        app.raw(Method::POST, "/api/v1/uploads?name=wide.png", Some(&a.token), "image/png", png.into_inner()).await?;
    assert_eq!(s, StatusCode::CREATED, "{att}");
    let id = att["id"].as_str().ok_or("id")?.to_owned();
    let mut ws = WsClient::connect(&app, &a).await?;
    ws.send(json!({"type": "send", "id": "s1", "conv": conv, "body": "pic", "attachment": id})).await?;
    let seq = ws.expect("ack").await?["seq"].as_i64().ok_or("seq")?;
    let (s, got) = app.raw_get(&format!("/api/v1/uploads/{id}"), &bob.token).await?;
    assert_eq!((s, got.len() as i64), (StatusCode::OK, att["size"].as_i64().ok_or("size")?));
    let thumb = app.raw_get(&format!("/api/v1/uploads/{id}/thumb"), &bob.token).await?.1;
    let t = image::load_from_memory_with_format(&thumb, image::ImageFormat::Jpeg)?;
    assert_eq!((t.width(), t.height()), (320, 80));
    let ranged = awc::Client::default()
        .get(format!("{}/api/v1/uploads/{id}", app.base))
        .insert_header(("Authorization", format!("Bearer {}", bob.token)))
        .insert_header(("Range", "bytes=1-8"))
        .send()
        .await?
        .body()
        .await?;
    assert_eq!(ranged.as_ref(), &got[1..9]);
    // A recall removes the object from the bucket.
    ws.send(json!({"type": "recall", "conv": conv, "seq": seq})).await?;
    ws.expect("recalled").await?;
    assert_eq!(app.raw_get(&format!("/api/v1/uploads/{id}"), &bob.token).await?.0, StatusCode::NOT_FOUND);
    let store = S3BlobStore::new(&s3_options(&app.settings.uploads.s3.bucket))?;
    let mut gone = false;
    for _ in 0..50 {
        if matches!(store.get(&id, None).await, Err(BlobError::NotFound)) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the object is deleted");
    Ok(())
}
