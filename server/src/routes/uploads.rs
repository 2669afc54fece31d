//! `/api/v1/uploads`: uploading a file (the raw body, streamed to the blob store under the limit
//! of its kind), downloading it (with byte ranges) and its thumbnail. The rules are in
//! [`crate::uploads`]; a message then carries the upload by its id (the `send` frame's
//! `attachment`).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use schema::db::uploads::{self as q, Upload};
use schema::message::{Attachment, AttachmentKind};
use serde::Deserialize;

use crate::auth::Authed;
use crate::blob::{BlobError, Chunks};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::uploads::{self as rules, RangeAsk};

/// Routes of this module under `/api/v1`.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create_upload).service(download_upload).service(upload_thumb);
}

crate::errors!(
    /// Errors of an upload.
    CreateErrors: InvalidUpload, UploadTooLarge, UnsupportedMediaType
);

crate::errors!(
    /// Errors of a download.
    DownloadErrors: UploadNotFound, RangeNotSatisfiable
);

crate::errors!(
    /// Errors of a thumbnail's download.
    ThumbErrors: UploadNotFound
);

/// `?name=&kind=` of an upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The file's name (sanitised: its last path part, at most 200 characters).
    pub name: Option<String>,
    /// `voice` for a voice note (the bytes must be audio); otherwise the kind follows from the
    /// bytes (`image` or `file`).
    pub kind: Option<String>,
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::UploadNotFound, "no such upload you may download")
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(ErrorCode::UploadTooLarge, format!("the upload is over {max} bytes for its kind"))
}

fn body_error(e: actix_web::error::PayloadError) -> BlobError {
    BlobError::Body(e.to_string())
}

/// `POST /uploads?name=<file name>[&kind=voice]`: the body is the file's bytes (any
/// `Content-Type`; not multipart). Answers the attachment a message can carry.
#[utoipa::path(tag = "uploads", security(("bearer" = [])), params(UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes"),
    responses((status = 201, description = "Stored", body = Attachment), CreateErrors))]
#[post("/uploads")]
async fn create_upload(
    state: web::Data<AppState>,
    me: Authed,
    req: HttpRequest,
    params: web::Query<UploadParams>,
    mut payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let params = params.into_inner();
    let name = params
        .name
        .as_deref()
        .and_then(rules::sanitize_name)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidUpload, "name is missing or has no usable characters"))?;
    let voice = match params.kind.as_deref() {
        None | Some("") => false,
        Some("voice") => true,
        Some(other) => {
            return Err(ApiError::new(ErrorCode::InvalidUpload, format!("kind {other:?}: only voice may be asked for")))
        }
    };
    let cfg = &state.settings.uploads;
    // The first bytes say what it is, hence its limit.
    let mut head = BytesMut::new();
    while head.len() < rules::SNIFF_BYTES {
        match payload.next().await {
            Some(chunk) => {
                head.extend_from_slice(&chunk.map_err(|e| ApiError::new(ErrorCode::InvalidUpload, e.to_string()))?)
            }
            None => break,
        }
    }
    if head.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidUpload, "the body is empty"));
    }
    let sniffed = rules::sniff(&head, voice)?;
    let max = rules::max_bytes(cfg, sniffed.kind);
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) || head.len() as u64 > max {
        return Err(too_large(max));
    }
    let id = new_id();
    let (size, width, height, has_thumb) = if sniffed.kind == AttachmentKind::Image {
        // Images are read whole (at most max_image_bytes): they are decoded and rewritten.
        let mut bytes = head;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::new(ErrorCode::InvalidUpload, e.to_string()))?;
            if (bytes.len() + chunk.len()) as u64 > max {
                return Err(too_large(max));
            }
            bytes.extend_from_slice(&chunk);
        }
        let bytes = bytes.freeze();
        let mime = sniffed.mime.clone();
        let img = web::block(move || rules::process_image(&bytes, &mime)).await??;
        let thumb_key = rules::thumb_key(&id);
        crate::blob::put_bytes(state.blobs.as_ref(), &thumb_key, Bytes::from(img.thumb))
            .await
            .map_err(ApiError::internal)?;
        let size = crate::blob::put_bytes(state.blobs.as_ref(), &id, Bytes::from(img.stored)).await;
        let size = match size {
            Ok(s) => s,
            Err(e) => {
                let _ = state.blobs.delete(&thumb_key).await;
                return Err(ApiError::internal(e));
            }
        };
        (size, Some(i64::from(img.width)), Some(i64::from(img.height)), true)
    } else {
        let body: Chunks<'_> = futures_util::stream::once(async move { Ok(head.freeze()) })
            .chain(payload.map_err(body_error))
            .boxed_local();
        let size = match state.blobs.put(&id, body, max).await {
            Ok(s) => s,
            Err(BlobError::TooLarge(max)) => return Err(too_large(max)),
            Err(BlobError::Body(e)) => return Err(ApiError::new(ErrorCode::InvalidUpload, e)),
            Err(e) => return Err(ApiError::internal(e)),
        };
        (size, None, None, false)
    };
    let up = Upload {
        id: id.clone(),
        owner_id: me.user.id,
        kind: sniffed.kind.as_str().to_owned(),
        mime: sniffed.mime,
        name,
        size: i64::try_from(size).unwrap_or(i64::MAX),
        width,
        height,
        has_thumb,
        storage_key: id.clone(),
        created_at: state.clock.now_ms(),
        attached_at: None,
        removed_at: None,
    };
    let row = up.clone();
    if let Err(e) = state.db.write(move |c| q::create(c, &row)).await {
        let _ = state.blobs.delete(&id).await;
        let _ = state.blobs.delete(&rules::thumb_key(&id)).await;
        return Err(e.into());
    }
    log::info!(user = me.user.id, upload = up.id.as_str(), size = up.size; "upload {} stored", up.id);
    Ok(HttpResponse::Created().json(rules::attachment(&up)))
}

/// A new upload id: 128 random bits, hex.
fn new_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The upload `id` when `me` may download it; 404 otherwise.
async fn readable(state: &AppState, me: &Authed, id: String) -> ApiResult<Upload> {
    if id.len() > 64 {
        return Err(not_found());
    }
    let up = state.db.read(move |c| q::find(c, &id)).await?.ok_or_else(not_found)?;
    if !rules::may_read(&state.hub, state.store.as_ref(), me.id(), &up).await? {
        return Err(not_found());
    }
    Ok(up)
}

fn cache_control(state: &AppState) -> String {
    format!("private, max-age={}", state.settings.uploads.cache_max_age_secs)
}

/// `GET /uploads/{id}`: the file's bytes (all, or the one range of `Range: bytes=a-b`), for its
/// uploader before a message carries it and for the readers of a message carrying it after.
#[utoipa::path(tag = "uploads", security(("bearer" = [])),
    params(("id" = String, Path, description = "The upload's id"),
        ("Range" = Option<String>, Header, description = "bytes=a-b, bytes=a- or bytes=-n (one range)")),
    responses(
        (status = 200, description = "The whole file, as its sniffed type (one of `uploads.mime_types` in /api/v1/limits)", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The range asked for, as the file's sniffed type", content_type = "*/*", body = Vec<u8>),
        DownloadErrors))]
#[get("/uploads/{id}")]
async fn download_upload(
    state: web::Data<AppState>,
    me: Authed,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let up = readable(&state, &me, path.into_inner()).await?;
    let size = u64::try_from(up.size).unwrap_or(0);
    let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, range) = match rules::parse_range(range, size) {
        RangeAsk::Whole => (StatusCode::OK, None),
        RangeAsk::Part(r) => (StatusCode::PARTIAL_CONTENT, Some(r)),
        RangeAsk::Unsatisfiable => {
            let mut resp = actix_web::ResponseError::error_response(&ApiError::new(
                ErrorCode::RangeNotSatisfiable,
                format!("the file has {size} bytes"),
            ));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let blob = match state.blobs.get(&up.storage_key, range.clone()).await {
        Ok(b) => b,
        Err(BlobError::NotFound) => return Err(not_found()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CONTENT_TYPE, up.mime.as_str()))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            rules::content_disposition(AttachmentKind::parse(&up.kind), &up.name),
        ))
        .insert_header((header::CACHE_CONTROL, cache_control(&state)))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    let length = match &range {
        Some(r) => {
            resp.insert_header((header::CONTENT_RANGE, format!("bytes {}-{}/{size}", r.start, r.end - 1)));
            r.end - r.start
        }
        None => size,
    };
    Ok(resp.no_chunking(length).streaming(blob.body.map_err(std::io::Error::other)))
}

/// `GET /uploads/{id}/thumb`: the thumbnail of an image (JPEG, longest side 320 px), for whoever
/// may download the image.
#[utoipa::path(tag = "uploads", security(("bearer" = [])),
    params(("id" = String, Path, description = "The upload's id")),
    responses(
        (status = 200, description = "The thumbnail", content_type = "image/jpeg", body = Vec<u8>),
        ThumbErrors))]
#[get("/uploads/{id}/thumb")]
async fn upload_thumb(state: web::Data<AppState>, me: Authed, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let up = readable(&state, &me, path.into_inner()).await?;
    if !up.has_thumb {
        return Err(not_found());
    }
    let blob = match state.blobs.get(&rules::thumb_key(&up.storage_key), None).await {
        Ok(b) => b,
        Err(BlobError::NotFound) => return Err(not_found()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/jpeg"))
        .insert_header((header::CONTENT_DISPOSITION, "inline"))
        .insert_header((header::CACHE_CONTROL, cache_control(&state)))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .no_chunking(blob.size)
        .streaming(blob.body.map_err(std::io::Error::other)))
}
