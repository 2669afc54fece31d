//! Uploads over real sockets on every store: upload, send with the attachment, download by the
//! message's readers only (strangers, later group members and recalls get 404; a member who
//! left keeps what came before), ranges, limits while streaming, the type allow-list, names,
//! images (size, thumbnail, EXIF removed), the sweeper of unattached uploads.

use std::io::Cursor;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};
use server::config::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{assert_error, TestApp, TestResult, User};
use crate::ws_client::{conv_of, WsClient};

fn small_limits(s: &mut Settings) {
    s.uploads.max_file_bytes = 64 * 1024;
    s.uploads.unattached_grace_secs = 1;
    s.uploads.sweep_interval_secs = 1;
}

/// Small limits and a fast sweeper.
mod tuned {
    use super::*;
    crate::backend_tests!(tune = small_limits; limits_types_and_names, unattached_uploads_are_swept);
}

crate::store_tests!(
    peer_downloads_and_strangers_do_not,
    group_window_decides,
    images_are_measured_thumbnailed_and_stripped,
    recall_removes_the_upload,
);

/// Uploads `bytes` as `name` (query `extra` appended); the status and the answer.
async fn upload(
    app: &TestApp,
    token: &str,
    name: &str,
    extra: &str,
    bytes: Vec<u8>,
) -> TestResult<(StatusCode, Value)> {
    let path = format!("/api/v1/uploads?name={}{extra}", urlencode(name));
    app.raw(Method::POST, &path, Some(token), "application/octet-stream", bytes).await
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A GET of a download with optional `Range`: status, headers we look at, body.
async fn fetch(
    app: &TestApp,
    path: &str,
    token: &str,
    range: Option<&str>,
) -> TestResult<(StatusCode, Value, Vec<u8>)> {
    let mut req = awc::Client::default()
        .get(format!("{}{path}", app.base))
        .insert_header(("Authorization", format!("Bearer {token}")));
    if let Some(r) = range {
        req = req.insert_header(("Range", r));
    }
    let mut resp = req.send().await?;
    let h = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let headers = json!({
        "type": h("content-type"), "disposition": h("content-disposition"), "range": h("content-range"),
        "accept": h("accept-ranges"), "nosniff": h("x-content-type-options"), "cache": h("cache-control"),
    });
    let body = resp.body().limit(64 * 1024 * 1024).await?.to_vec();
    Ok((resp.status(), headers, body))
}

async fn pair(app: &TestApp) -> TestResult<(User, User, String)> {
    let a = app.user("alice").await?;
    let b = app.user("bob").await?;
    app.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    Ok((a, b, conv))
}

/// Sends a message carrying upload `id` and answers its seq.
async fn send_with(ws: &mut WsClient, conv: &str, cid: &str, id: &str) -> TestResult<i64> {
    ws.send(json!({"type": "send", "id": cid, "conv": conv, "body": "see this", "attachment": id})).await?;
    let ack = ws.expect("ack").await?;
    ack["seq"].as_i64().ok_or_else(|| format!("no seq in {ack}").into())
}

fn text_file() -> Vec<u8> {
    (0..2000).map(|i| format!("line {i}\n")).collect::<String>().into_bytes()
}

async fn peer_downloads_and_strangers_do_not(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let eve = app.user("eve").await?;
    let bytes = text_file();
    let (s, att) = upload(&app, &a.token, "notes.txt", "", bytes.clone()).await?;
    assert_eq!(s, StatusCode::CREATED, "{att}");
    assert_eq!((att["kind"].as_str(), att["mime"].as_str()), (Some("file"), Some("text/plain")), "{att}");
    assert_eq!(att["size"], bytes.len() as i64);
    let id = att["id"].as_str().ok_or("no id")?.to_owned();
    let path = format!("/api/v1/uploads/{id}");
    // Before a message carries it: the uploader only.
    assert_eq!(fetch(&app, &path, &a.token, None).await?.0, StatusCode::OK);
    assert_eq!(fetch(&app, &path, &b.token, None).await?.0, StatusCode::NOT_FOUND);
    let mut ws = WsClient::connect(&app, &a).await?;
    let seq = send_with(&mut ws, &conv, "m1", &id).await?;
    let synced = ws.sync(&conv, seq - 1, 10).await?;
    assert_eq!(synced["messages"][0]["attachment"]["id"], id.as_str(), "{synced}");
    let (s, h, got) = fetch(&app, &path, &b.token, None).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, bytes, "the peer gets the same bytes");
    assert_eq!(h["type"], "text/plain");
    assert_eq!(h["disposition"], "attachment; filename*=UTF-8''notes.txt");
    assert_eq!((h["accept"].as_str(), h["nosniff"].as_str()), (Some("bytes"), Some("nosniff")));
    assert!(h["cache"].as_str().is_some_and(|c| c.starts_with("private")), "{h}");
    // Ranges.
    let (s, h, got) = fetch(&app, &path, &b.token, Some("bytes=0-9")).await?;
    assert_eq!((s, got.as_slice()), (StatusCode::PARTIAL_CONTENT, &bytes[..10]));
    assert_eq!(h["range"], format!("bytes 0-9/{}", bytes.len()));
    let (s, _, got) = fetch(&app, &path, &b.token, Some("bytes=-5")).await?;
    assert_eq!((s, got.as_slice()), (StatusCode::PARTIAL_CONTENT, &bytes[bytes.len() - 5..]));
    let (s, _, got) = fetch(&app, &path, &b.token, Some("bytes=100-")).await?;
    assert_eq!((s, got.as_slice()), (StatusCode::PARTIAL_CONTENT, &bytes[100..]));
    let (s, h, got) = fetch(&app, &path, &b.token, Some(&format!("bytes={}-", bytes.len()))).await?;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(h["range"], format!("bytes */{}", bytes.len()));
    assert_eq!(serde_json::from_slice::<Value>(&got)?["error"], "range_not_satisfiable");
    // Strangers, unknown ids, no token.
    let (s, _, got) = fetch(&app, &path, &eve.token, None).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(serde_json::from_slice::<Value>(&got)?["error"], "upload_not_found");
    assert_eq!(fetch(&app, "/api/v1/uploads/0123456789abcdef", &a.token, None).await?.0, StatusCode::NOT_FOUND);
    assert_eq!(fetch(&app, &format!("{path}/thumb"), &b.token, None).await?.0, StatusCode::NOT_FOUND);
    let (s, _) = app.raw(Method::POST, "/api/v1/uploads?name=x.txt", None, "text/plain", b"hi".to_vec()).await?;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        awc::Client::default().get(format!("{}{path}", app.base)).send().await?.status(),
        StatusCode::UNAUTHORIZED
    );
    // Someone else's upload cannot be sent.
    let (_, other) = upload(&app, &eve.token, "e.txt", "", b"eve's".to_vec()).await?;
    ws.send(json!({"type": "send", "id": "m2", "conv": conv, "body": "x", "attachment": other["id"]})).await?;
    assert_eq!(ws.expect("error").await?["code"], "upload_not_found");
    Ok(())
}

async fn group_window_decides(app: TestApp) -> TestResult {
    let o = app.user("owner").await?;
    let early = app.user("early").await?;
    let late = app.user("late").await?;
    for u in [&early, &late] {
        app.befriend(&o, u).await?;
    }
    let (s, g) = app.post("/api/v1/groups", Some(&o.token), json!({"name": "T", "member_ids": [early.id]})).await?;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_i64().ok_or("id")?;
    let conv = format!("g:{gid}");
    let mut ws = WsClient::connect(&app, &o).await?;
    let (_, att) = upload(&app, &o.token, "plan.txt", "", text_file()).await?;
    let id = att["id"].as_str().ok_or("id")?.to_owned();
    send_with(&mut ws, &conv, "g1", &id).await?;
    let (s, _) =
        app.post(&format!("/api/v1/groups/{gid}/members"), Some(&o.token), json!({"user_ids": [late.id]})).await?;
    assert_eq!(s, StatusCode::OK);
    let path = format!("/api/v1/uploads/{id}");
    assert_eq!(fetch(&app, &path, &early.token, None).await?.0, StatusCode::OK);
    assert_eq!(fetch(&app, &path, &late.token, None).await?.0, StatusCode::NOT_FOUND, "joined after the message");
    // A member who leaves keeps what was sent before, not what comes after.
    let (s, _) = app.post(&format!("/api/v1/groups/{gid}/leave"), Some(&early.token), json!({})).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, att2) = upload(&app, &o.token, "later.txt", "", b"later".to_vec()).await?;
    let id2 = att2["id"].as_str().ok_or("id")?.to_owned();
    send_with(&mut ws, &conv, "g2", &id2).await?;
    assert_eq!(fetch(&app, &path, &early.token, None).await?.0, StatusCode::OK, "sent while a member");
    assert_eq!(fetch(&app, &format!("/api/v1/uploads/{id2}"), &early.token, None).await?.0, StatusCode::NOT_FOUND);
    assert_eq!(fetch(&app, &format!("/api/v1/uploads/{id2}"), &late.token, None).await?.0, StatusCode::OK);
    Ok(())
}

/// Sends `parts` as a chunked body with pauses, stopping at the first answer; the status line.
async fn chunked(app: &TestApp, token: &str, path: &str, parts: usize, part: usize) -> TestResult<String> {
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await?;
    let chunk = vec![b'a'; part];
    let mut answer = vec![0u8; 4096];
    for _ in 0..parts {
        let mut c = format!("{part:x}\r\n").into_bytes();
        c.extend_from_slice(&chunk);
        c.extend_from_slice(b"\r\n");
        if sock.write_all(&c).await.is_err() {
            break;
        }
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(50), sock.read(&mut answer)).await {
            if n > 0 {
                return Ok(String::from_utf8_lossy(&answer[..n]).into_owned());
            }
        }
    }
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut answer)).await??;
    Ok(String::from_utf8_lossy(&answer[..n]).into_owned())
}

async fn limits_types_and_names(app: TestApp) -> TestResult {
    let a = app.user("alice").await?;
    // Over max_file_bytes (64 KiB): refused while streaming, before the body ends.
    let answer = chunked(&app, &a.token, "/api/v1/uploads?name=big.txt", 40, 8 * 1024).await?;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("upload_too_large"), "{answer}");
    // With a Content-Length over the limit: at once.
    assert_error(
        &upload(&app, &a.token, "big.txt", "", vec![b'a'; 70 * 1024]).await?,
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
    );
    // Exactly the limit is fine.
    assert_eq!(upload(&app, &a.token, "max.txt", "", vec![b'a'; 64 * 1024]).await?.0, StatusCode::CREATED);
    // An ELF executable, a Windows one, unknown binary.
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
    elf.resize(512, 0);
    assert_error(
        &upload(&app, &a.token, "photo.jpg", "", elf).await?,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let mut exe = b"MZ\x90\0".to_vec();
    exe.resize(512, 0);
    assert_error(
        &upload(&app, &a.token, "setup.exe", "", exe).await?,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    assert_error(
        &upload(&app, &a.token, "x.bin", "", vec![0, 1, 2, 3, 250, 251]).await?,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    // Bad requests.
    assert_error(
        &upload(&app, &a.token, "empty.txt", "", Vec::new()).await?,
        StatusCode::BAD_REQUEST,
        "invalid_upload",
    );
    assert_error(
        &upload(&app, &a.token, "note.txt", "&kind=voice", b"not audio".to_vec()).await?,
        StatusCode::BAD_REQUEST,
        "invalid_upload",
    );
    assert_error(&upload(&app, &a.token, "/../", "", b"x".to_vec()).await?, StatusCode::BAD_REQUEST, "invalid_upload");
    let (s, v) = app.raw(Method::POST, "/api/v1/uploads", Some(&a.token), "text/plain", b"x".to_vec()).await?;
    assert_error(&(s, v), StatusCode::BAD_REQUEST, "invalid_upload");
    assert_error(
        &upload(&app, &a.token, "fake.png", "", b"\x89PNG\r\n\x1a\n broken".to_vec()).await?,
        StatusCode::BAD_REQUEST,
        "invalid_upload",
    );
    // Names.
    let (s, att) = upload(&app, &a.token, "../../etc/..passwd\u{202e}txt.exe", "", b"root".to_vec()).await?;
    assert_eq!(s, StatusCode::CREATED, "{att}");
    assert_eq!(att["name"], "passwdtxt.exe");
    let (_, att) = upload(&app, &a.token, &format!("C:\\tmp\\{}.pdf?", "n".repeat(300)), "", b"text".to_vec()).await?;
    let name = att["name"].as_str().ok_or("name")?;
    assert_eq!(name.chars().count(), 200);
    assert!(name.ends_with(".pdf_"), "{name}");
    // The limits endpoint tells all of it.
    let (_, l) = app.get("/api/v1/limits", &a.token).await?;
    assert_eq!(l["uploads"]["max_file_bytes"], 64 * 1024);
    assert!(l["uploads"]["mime_types"].as_array().is_some_and(|m| m.iter().any(|t| t == "image/jpeg")), "{l}");
    Ok(())
}

/// A JPEG of `w`x`h` with an EXIF APP1 segment carrying a GPS IFD and a marker string.
fn jpeg_with_exif(w: u32, h: u32) -> TestResult<Vec<u8>> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 90).encode_image(&img)?;
    // TIFF (little-endian): IFD0 with one entry, GPSInfo (0x8825) -> a GPS IFD with latitude ref.
    let mut tiff = b"II\x2a\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&[1, 0, 0x25, 0x88, 4, 0, 1, 0, 0, 0, 26, 0, 0, 0, 0, 0, 0, 0]);
    tiff.extend_from_slice(&[1, 0, 1, 0, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0, 0, 0, 0, 0]);
    tiff.extend_from_slice(b"GPS-SECRET-52.5200N-13.4050E");
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    Ok(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn images_are_measured_thumbnailed_and_stripped(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let mut ws = WsClient::connect(&app, &a).await?;
    // PNG, wider than tall, with transparency.
    let png_img = image::RgbaImage::from_fn(640, 400, |x, _| image::Rgba([200, 10, 10, (x % 256) as u8]));
    let mut png = Cursor::new(Vec::new());
    png_img.write_to(&mut png, image::ImageFormat::Png)?;
    let (s, att) = upload(&app, &a.token, "chart.png", "", png.into_inner()).await?;
    assert_eq!(s, StatusCode::CREATED, "{att}");
    assert_eq!((att["kind"].as_str(), att["mime"].as_str()), (Some("image"), Some("image/png")));
    assert_eq!(
        (att["width"].as_i64(), att["height"].as_i64(), att["thumb"].as_bool()),
        (Some(640), Some(400), Some(true))
    );
    let id = att["id"].as_str().ok_or("id")?.to_owned();
    send_with(&mut ws, &conv, "p1", &id).await?;
    let (s, h, thumb) = fetch(&app, &format!("/api/v1/uploads/{id}/thumb"), &b.token, None).await?;
    assert_eq!((s, h["type"].as_str()), (StatusCode::OK, Some("image/jpeg")));
    let t = image::load_from_memory_with_format(&thumb, image::ImageFormat::Jpeg)?;
    assert_eq!((t.width(), t.height()), (320, 200));
    let (_, h, _) = fetch(&app, &format!("/api/v1/uploads/{id}"), &b.token, None).await?;
    assert_eq!(h["disposition"], "inline; filename*=UTF-8''chart.png");
    // JPEG with EXIF GPS: measured, thumbnailed, stored without the EXIF segment.
    let jpeg = jpeg_with_exif(300, 500)?;
    assert!(contains(&jpeg, b"GPS-SECRET") && contains(&jpeg, b"Exif\0\0"));
    let (s, att) = upload(&app, &a.token, "IMG_0001.JPG", "", jpeg).await?;
    assert_eq!(s, StatusCode::CREATED, "{att}");
    assert_eq!((att["width"].as_i64(), att["height"].as_i64()), (Some(300), Some(500)));
    let id = att["id"].as_str().ok_or("id")?.to_owned();
    send_with(&mut ws, &conv, "p2", &id).await?;
    let (s, _, stored) = fetch(&app, &format!("/api/v1/uploads/{id}"), &b.token, None).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(stored.len() as i64, att["size"].as_i64().ok_or("size")?);
    assert!(!contains(&stored, b"GPS-SECRET"), "the location is gone");
    assert!(!contains(&stored, b"Exif\0\0"), "the EXIF segment is gone");
    let back = image::load_from_memory_with_format(&stored, image::ImageFormat::Jpeg)?;
    assert_eq!((back.width(), back.height()), (300, 500), "still the same picture");
    let (_, _, thumb) = fetch(&app, &format!("/api/v1/uploads/{id}/thumb"), &b.token, None).await?;
    let t = image::load_from_memory_with_format(&thumb, image::ImageFormat::Jpeg)?;
    assert_eq!((t.width(), t.height()), (192, 320));
    Ok(())
}

async fn recall_removes_the_upload(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let mut ws = WsClient::connect(&app, &a).await?;
    let (_, att) = upload(&app, &a.token, "oops.txt", "", b"should not have".to_vec()).await?;
    let id = att["id"].as_str().ok_or("id")?.to_owned();
    let seq = send_with(&mut ws, &conv, "r1", &id).await?;
    let path = format!("/api/v1/uploads/{id}");
    assert_eq!(fetch(&app, &path, &b.token, None).await?.0, StatusCode::OK);
    ws.send(json!({"type": "recall", "conv": conv, "seq": seq})).await?;
    ws.expect("recalled").await?;
    for t in [&b.token, &a.token] {
        assert_eq!(fetch(&app, &path, t, None).await?.0, StatusCode::NOT_FOUND);
    }
    // The bytes go too: the row is marked removed first (nobody is served it from then on), then
    // the bytes are deleted, so both are awaited.
    let (mut removed, mut gone) = (false, false);
    for _ in 0..100 {
        let i = id.clone();
        let up = app.state.db.read(move |c| schema::db::uploads::find(c, &i)).await?.ok_or("row")?;
        removed = up.removed_at.is_some();
        gone = crate::helpers::blob_gone(&app, &id);
        if removed && gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(removed, "the upload is marked removed");
    assert!(gone, "the bytes are deleted");
    Ok(())
}

async fn unattached_uploads_are_swept(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let (_, kept) = upload(&app, &a.token, "kept.txt", "", b"kept".to_vec()).await?;
    let kept = kept["id"].as_str().ok_or("id")?.to_owned();
    let mut ws = WsClient::connect(&app, &a).await?;
    send_with(&mut ws, &conv, "k1", &kept).await?;
    let (_, left) = upload(&app, &a.token, "left.txt", "", b"left".to_vec()).await?;
    let left = left["id"].as_str().ok_or("id")?.to_owned();
    assert_eq!(fetch(&app, &format!("/api/v1/uploads/{left}"), &a.token, None).await?.0, StatusCode::OK);
    // Grace 1 s, sweep every second.
    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Served no more, then (the bytes are deleted after the row is marked) gone from disk.
        if fetch(&app, &format!("/api/v1/uploads/{left}"), &a.token, None).await?.0 == StatusCode::NOT_FOUND
            && crate::helpers::blob_gone(&app, &left)
        {
            gone = true;
            break;
        }
    }
    assert!(gone, "the unattached upload was swept: not served, bytes deleted");
    assert_eq!(
        fetch(&app, &format!("/api/v1/uploads/{kept}"), &b.token, None).await?.0,
        StatusCode::OK,
        "attached: kept"
    );
    Ok(())
}
