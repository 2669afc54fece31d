//! Uploads on the server's side, below the HTTP handlers ([`crate::routes::uploads`]): what a
//! body is (its type sniffed from the bytes, checked against [`ALLOWED`]), its name made safe,
//! images measured, thumbnailed and stripped of their metadata, who may download an upload, and
//! the removal of uploads no message needs any more (the sweeper and recalls).
//!
//! Who may download upload `u` ([`may_read`]): while no message carries it, its uploader; then
//! whoever can read a message carrying it that is not recalled: a participant of its
//! conversation whose history window (the joined / left points of a group member, a cleared
//! conversation) holds the message's seq and who did not delete it for themselves. Anyone else
//! is told the upload does not exist.

use std::collections::HashSet;
use std::io::Cursor;
use std::ops::Range;
use std::sync::Arc;

use actors::command::ChatError;
use actors::hub::Hub;
use actors::store::MessageStore;
use schema::db::uploads::Upload;
use schema::db::{conversations, uploads};
use schema::message::{Attachment, AttachmentKind};
use schema::{ConvId, UserId};

use crate::blob::BlobStore;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// How many first bytes of a body the type is sniffed from.
pub const SNIFF_BYTES: usize = 8192;
/// The longest side of a thumbnail, pixels.
pub const THUMB_SIDE: u32 = 320;
/// The JPEG quality of thumbnails.
const THUMB_QUALITY: u8 = 80;
/// The longest file name kept, characters (longer ones are cut, the extension kept).
pub const MAX_NAME_CHARS: usize = 200;
/// The widest or tallest image decoded, pixels.
const MAX_IMAGE_SIDE: u32 = 16_384;
/// The most memory one image's decoding may take, bytes.
const MAX_DECODE_BYTES: u64 = 256 << 20;
/// Unattached uploads the sweeper removes per round.
const SWEEP_BATCH: i64 = 100;

/// The content types an upload may have, as sniffed (`infer`'s names; `text/plain` for bytes
/// without a signature that are UTF-8 text). Executables, scripts, HTML and unknown binaries are
/// refused.
pub const ALLOWED: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "audio/ogg",
    "audio/opus",
    "audio/mpeg",
    "audio/mp4",
    "audio/m4a",
    "audio/aac",
    "audio/x-wav",
    "audio/x-flac",
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "application/pdf",
    "application/zip",
    "application/gzip",
    "application/x-7z-compressed",
    "application/x-tar",
    "application/epub+zip",
    "application/rtf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "text/plain",
];

/// The image types (kind `image`: measured and thumbnailed).
const IMAGES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// What a body was found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    /// `image`, `voice` or `file`.
    pub kind: AttachmentKind,
    /// The content type stored and served.
    pub mime: String,
}

/// Sniffs the type of a body from its first bytes and picks its kind: `image` for the
/// [`IMAGES`], `voice` when the client asked for it (`voice`) and the bytes are audio, `file`
/// otherwise. 415 `unsupported_media_type` for a type not in [`ALLOWED`], 400 `invalid_upload`
/// for a voice note that is not audio.
pub fn sniff(head: &[u8], voice: bool) -> Result<Sniffed, ApiError> {
    let mime = match infer::get(head) {
        Some(t) => t.mime_type().to_owned(),
        None if is_text(head) => "text/plain".to_owned(),
        None => "application/octet-stream".to_owned(),
    };
    if !ALLOWED.contains(&mime.as_str()) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("files of type {mime} are not accepted (GET /api/v1/limits lists the types)"),
        ));
    }
    if voice {
        // WebM and MP4 files are sniffed as video; a voice note is their audio-only form.
        let audio = match mime.as_str() {
            "video/webm" => "audio/webm",
            "video/mp4" | "audio/m4a" => "audio/mp4",
            "audio/x-wav" => "audio/wav",
            m if m.starts_with("audio/") => m,
            _ => {
                return Err(ApiError::new(ErrorCode::InvalidUpload, format!("a voice note must be audio, not {mime}")))
            }
        };
        return Ok(Sniffed { kind: AttachmentKind::Voice, mime: audio.to_owned() });
    }
    let kind = if IMAGES.contains(&mime.as_str()) { AttachmentKind::Image } else { AttachmentKind::File };
    Ok(Sniffed { kind, mime })
}

/// True for bytes that read as UTF-8 text without control characters other than whitespace
/// (the last character may be cut off at the end of the sniffed head).
fn is_text(head: &[u8]) -> bool {
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if e.error_len().is_none() && head.len() - e.valid_up_to() < 4 => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !text.is_empty() && !text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

/// The largest body of a kind.
pub fn max_bytes(s: &crate::config::UploadsSection, kind: AttachmentKind) -> u64 {
    match kind {
        AttachmentKind::Image => s.max_image_bytes,
        AttachmentKind::Voice => s.max_voice_bytes,
        AttachmentKind::File => s.max_file_bytes,
    }
}

/// A file name made safe to store and show: only its last path part, without control and
/// direction-changing characters, characters Windows refuses replaced by `_`, leading dots and
/// surrounding spaces removed, at most [`MAX_NAME_CHARS`] (the extension kept). `None` when
/// nothing is left.
pub fn sanitize_name(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .map(|c| if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') { '_' } else { c })
        .collect();
    let name = cleaned.trim().trim_start_matches('.').trim();
    if name.is_empty() {
        return None;
    }
    if name.chars().count() <= MAX_NAME_CHARS {
        return Some(name.to_owned());
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && e.chars().count() <= 16 => (s, Some(e)),
        _ => (name, None),
    };
    let keep = MAX_NAME_CHARS - ext.map_or(0, |e| e.chars().count() + 1);
    let stem: String = stem.chars().take(keep).collect();
    Some(match ext {
        Some(e) => format!("{}.{e}", stem.trim_end()),
        None => stem,
    })
}

/// An image as stored: its bytes without metadata, its size in pixels and its thumbnail.
#[derive(Debug)]
pub struct ProcessedImage {
    /// The bytes to store (the upload minus EXIF, XMP, IPTC and comments).
    pub stored: Vec<u8>,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// A JPEG whose longest side is at most [`THUMB_SIDE`].
    pub thumb: Vec<u8>,
}

fn undecodable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidUpload, format!("the image cannot be decoded: {e}"))
}

/// Decodes an image of type `mime` (one of [`IMAGES`]): its size, its thumbnail and the bytes
/// to store without metadata (a JPEG keeps only its orientation). Blocking: run it off the
/// event loop. 400 `invalid_upload` when it does not decode.
pub fn process_image(bytes: &[u8], mime: &str) -> Result<ProcessedImage, ApiError> {
    use image::ImageDecoder;
    let format = match mime {
        "image/jpeg" => image::ImageFormat::Jpeg,
        "image/png" => image::ImageFormat::Png,
        "image/gif" => image::ImageFormat::Gif,
        _ => image::ImageFormat::WebP,
    };
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let (width, height) = decoder.dimensions();
    let img = image::DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    let small = if width > THUMB_SIDE || height > THUMB_SIDE { img.thumbnail(THUMB_SIDE, THUMB_SIDE) } else { img };
    // Transparent pixels are shown on white (JPEG has no alpha).
    let rgba = small.to_rgba8();
    let rgb = image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = u16::from(p[3]);
        let over = |c: u8| ((u16::from(c) * a + 255 * (255 - a)) / 255) as u8;
        image::Rgb([over(p[0]), over(p[1]), over(p[2])])
    });
    let mut thumb = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut thumb, THUMB_QUALITY)
        .encode_image(&rgb)
        .map_err(ApiError::internal)?;
    let stored = match format {
        image::ImageFormat::Jpeg => strip_jpeg(bytes, orientation.to_exif()),
        image::ImageFormat::Png => strip_png(bytes),
        image::ImageFormat::WebP => strip_webp(bytes),
        _ => Some(bytes.to_vec()),
    }
    .ok_or_else(|| ApiError::new(ErrorCode::InvalidUpload, "the image's structure is damaged"))?;
    Ok(ProcessedImage { stored, width, height, thumb })
}

/// A JPEG without its APP1 (EXIF, XMP), APP13 (IPTC) and comment segments, with a minimal EXIF
/// segment holding only `orientation` when it is not 1 (so viewers still turn the picture).
/// `None` when the segments do not parse.
pub fn strip_jpeg(jpeg: &[u8], orientation: u8) -> Option<Vec<u8>> {
    if jpeg.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut out = Vec::with_capacity(jpeg.len());
    out.extend_from_slice(&[0xFF, 0xD8]);
    if orientation > 1 && orientation <= 8 {
        // APP1 "Exif\0\0", a big-endian TIFF header and one IFD entry: 0x0112 SHORT 1 = orientation.
        let mut tiff = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0".to_vec();
        tiff.extend_from_slice(&[orientation, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((tiff.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&tiff);
    }
    let mut pos = 2;
    loop {
        if *jpeg.get(pos)? != 0xFF {
            return None;
        }
        let mut m = pos + 1;
        while *jpeg.get(m)? == 0xFF {
            m += 1;
        }
        let marker = jpeg[m];
        match marker {
            0xD9 => {
                out.extend_from_slice(&[0xFF, 0xD9]);
                return Some(out);
            }
            0x01 | 0xD0..=0xD7 => {
                out.extend_from_slice(&[0xFF, marker]);
                pos = m + 1;
            }
            _ => {
                let len = usize::from(u16::from_be_bytes([*jpeg.get(m + 1)?, *jpeg.get(m + 2)?]));
                let end = m + 1 + len;
                if len < 2 || end > jpeg.len() {
                    return None;
                }
                if marker == 0xDA {
                    // Start of scan: the entropy-coded data and the rest of the file as they are.
                    out.extend_from_slice(&[0xFF, 0xDA]);
                    out.extend_from_slice(&jpeg[m + 1..]);
                    return Some(out);
                }
                if !matches!(marker, 0xE1 | 0xED | 0xFE) {
                    out.extend_from_slice(&[0xFF, marker]);
                    out.extend_from_slice(&jpeg[m + 1..end]);
                }
                pos = end;
            }
        }
    }
}

/// A PNG without its `eXIf`, text (`tEXt`, `zTXt`, `iTXt`) and `tIME` chunks. `None` when the
/// chunks do not parse.
pub fn strip_png(png: &[u8]) -> Option<Vec<u8>> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.get(..8)? != SIGNATURE {
        return None;
    }
    let mut out = SIGNATURE.to_vec();
    let mut pos = 8;
    while pos < png.len() {
        let len = u32::from_be_bytes(png.get(pos..pos + 4)?.try_into().ok()?) as usize;
        let end = pos.checked_add(12)?.checked_add(len)?;
        let kind = png.get(pos + 4..pos + 8)?;
        let chunk = png.get(pos..end)?;
        if !matches!(kind, b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt" | b"tIME") {
            out.extend_from_slice(chunk);
        }
        pos = end;
        if kind == b"IEND" {
            break;
        }
    }
    Some(out)
}

/// A WebP without its `EXIF` and `XMP ` chunks (and their flags in `VP8X`). `None` when the
/// chunks do not parse.
pub fn strip_webp(webp: &[u8]) -> Option<Vec<u8>> {
    if webp.get(..4)? != b"RIFF" || webp.get(8..12)? != b"WEBP" {
        return None;
    }
    let mut out = webp[..12].to_vec();
    let mut pos = 12;
    while pos + 8 <= webp.len() {
        let kind = &webp[pos..pos + 4];
        let len = u32::from_le_bytes(webp[pos + 4..pos + 8].try_into().ok()?) as usize;
        let end = (pos + 8).checked_add(len + (len & 1))?.min(webp.len());
        let chunk = webp.get(pos..end)?;
        match kind {
            b"EXIF" | b"XMP " => {}
            b"VP8X" => {
                let mut c = chunk.to_vec();
                if let Some(flags) = c.get_mut(8) {
                    *flags &= !0x0C;
                }
                out.extend_from_slice(&c);
            }
            _ => out.extend_from_slice(chunk),
        }
        pos = end;
    }
    let riff = u32::try_from(out.len() - 8).ok()?;
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    Some(out)
}

/// The attachment a message carries for an upload.
pub fn attachment(up: &Upload) -> Attachment {
    Attachment {
        id: up.id.clone(),
        kind: AttachmentKind::parse(&up.kind),
        name: up.name.clone(),
        mime: up.mime.clone(),
        size: up.size,
        width: up.width,
        height: up.height,
        thumb: up.has_thumb,
    }
}

/// The key of an upload's thumbnail in the blob store.
pub fn thumb_key(storage_key: &str) -> String {
    format!("{storage_key}.thumb")
}

/// Whether `user` may download `up` (the rule of the module docs). Removed uploads are nobody's.
pub async fn may_read(hub: &Hub, store: &dyn MessageStore, user: UserId, up: &Upload) -> Result<bool, ApiError> {
    if up.removed_at.is_some() {
        return Ok(false);
    }
    let carriers = store.with_attachment(up.id.clone()).await?;
    if carriers.is_empty() {
        // Also an upload marked attached by a send that was then refused: still the uploader's.
        return Ok(up.owner_id == user.0);
    }
    for m in carriers.iter().filter(|m| m.recalled_at.is_none()) {
        let (floor, ceiling) = match crate::ws::access(hub, user, &m.conv).await {
            Ok(window) => window,
            Err(ChatError::UnknownConversation) => continue,
            Err(e) => return Err(e.into()),
        };
        if m.seq <= floor || m.seq > ceiling {
            continue;
        }
        let (c, seq) = (m.conv.clone(), m.seq);
        let hidden = hub.db.read(move |db| conversations::hidden_between(db, user.0, c.as_str(), seq, seq)).await?;
        if hidden.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes an upload: marks it removed (so nobody is served it from now on), then deletes its
/// bytes and thumbnail. `attached`: whether to remove it although a message carried it
/// (recalls); the sweeper removes only uploads still unattached. True when it was removed now.
pub async fn remove(hub: &Hub, blobs: &dyn BlobStore, up: &Upload, attached: bool) -> Result<bool, ApiError> {
    let (id, now) = (up.id.clone(), hub.clock.now_ms());
    let marked = hub
        .db
        .write(move |c| if attached { uploads::remove(c, &id, now) } else { uploads::mark_removed(c, &id, now) })
        .await?;
    if marked {
        for key in [up.storage_key.clone(), thumb_key(&up.storage_key)] {
            if let Err(e) = blobs.delete(&key).await {
                log::warn!("deleting blob {key} of upload {}: {e}", up.id);
            }
        }
    }
    Ok(marked)
}

/// After message `seq` of `conv` was recalled: the upload it carried is removed when no other
/// message that is not recalled carries it.
pub async fn after_recall(hub: &Hub, blobs: &dyn BlobStore, conv: ConvId, seq: i64) -> Result<(), ApiError> {
    let Some(m) = hub.store.get(conv, seq).await? else { return Ok(()) };
    let Some(a) = m.attachment.filter(|_| m.recalled_at.is_some()) else { return Ok(()) };
    let carriers = hub.store.with_attachment(a.id.clone()).await?;
    if carriers.iter().any(|c| c.recalled_at.is_none()) {
        return Ok(());
    }
    let id = a.id.clone();
    if let Some(up) = hub.db.read(move |c| uploads::find(c, &id)).await? {
        if remove(hub, blobs, &up, true).await? {
            log::info!("removed upload {} of recalled message {}:{seq}", up.id, m.conv);
        }
    }
    Ok(())
}

/// One round of the sweeper: removes the uploads no message carries that are older than
/// `uploads.unattached_grace_secs`. Answers how many it removed.
pub async fn sweep(state: &AppState) -> usize {
    let grace = i64::try_from(state.settings.uploads.unattached_grace_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let before = state.clock.now_ms().saturating_sub(grace);
    let found = state.db.read(move |c| uploads::unattached_before(c, before, SWEEP_BATCH)).await;
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            log::warn!("upload sweep failed: {e}");
            return 0;
        }
    };
    let mut removed = 0;
    let mut seen = HashSet::new();
    for up in found.iter().filter(|u| seen.insert(u.id.clone())) {
        match remove(&state.hub, state.blobs.as_ref(), up, false).await {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) => log::warn!("removing unattached upload {}: {e}", up.id),
        }
    }
    if removed > 0 {
        log::info!("removed {removed} unattached uploads");
    }
    removed
}

/// What a `Range` header asks of a blob of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAsk {
    /// No range (or one this server ignores: several ranges, another unit, bad syntax): the
    /// whole blob, 200.
    Whole,
    /// One satisfiable range, 206.
    Part(Range<u64>),
    /// A range that starts past the end, 416.
    Unsatisfiable,
}

/// Parses `Range: bytes=a-b` / `bytes=a-` / `bytes=-n` against a blob of `size` bytes.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return RangeAsk::Whole };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeAsk::Whole };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| if s.bytes().all(|c| c.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeAsk::Whole,
        (true, false) => match num(b) {
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if size == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part(size.saturating_sub(n)..size),
            None => RangeAsk::Whole,
        },
        (false, _) => {
            let Some(start) = num(a) else { return RangeAsk::Whole };
            let end = if b.is_empty() {
                size
            } else {
                match num(b) {
                    Some(e) if e >= start => e.saturating_add(1).min(size),
                    _ => return RangeAsk::Whole,
                }
            };
            if start >= size {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part(start..end)
            }
        }
    }
}

/// `Content-Disposition` of a download: `inline` for images and voice notes, `attachment`
/// otherwise, the name in RFC 8187 form.
pub fn content_disposition(kind: AttachmentKind, name: &str) -> String {
    let how = if matches!(kind, AttachmentKind::File) { "attachment" } else { "inline" };
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{how}; filename*=UTF-8''{encoded}")
}

/// The blob store of `[uploads]`.
pub fn open_blobs(s: &crate::config::UploadsSection) -> anyhow::Result<Arc<dyn BlobStore>> {
    use anyhow::Context;
    Ok(match s.backend {
        crate::config::BlobBackend::Local => Arc::new(
            crate::blob::LocalBlobStore::new(&s.dir).with_context(|| format!("opening uploads.dir {}", s.dir))?,
        ),
        crate::config::BlobBackend::S3 => Arc::new(
            crate::blob::S3BlobStore::new(&crate::blob::S3Options {
                endpoint: s.s3.endpoint.clone(),
                bucket: s.s3.bucket.clone(),
                region: s.s3.region.clone(),
                access_key_id: s.s3.access_key_id.clone(),
                secret_access_key: s.s3.secret_access_key.clone(),
                allow_http: s.s3.allow_http,
            })
            .context("uploads.s3")?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(sanitize_name("C:\\Users\\me\\photo.jpg").as_deref(), Some("photo.jpg"));
        assert_eq!(sanitize_name(".hidden").as_deref(), Some("hidden"));
        assert_eq!(sanitize_name("a\u{0}b\u{202e}gpj.exe").as_deref(), Some("abgpj.exe"));
        assert_eq!(sanitize_name("what?.txt").as_deref(), Some("what_.txt"));
        assert_eq!(sanitize_name(" / "), None);
        let long = format!("{}.pdf", "x".repeat(500));
        let cut = sanitize_name(&long).unwrap_or_default();
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with(".pdf"));
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), RangeAsk::Part(0..4));
        assert_eq!(parse_range(Some("bytes=5-"), 10), RangeAsk::Part(5..10));
        assert_eq!(parse_range(Some("bytes=-3"), 10), RangeAsk::Part(7..10));
        assert_eq!(parse_range(Some("bytes=2-100"), 10), RangeAsk::Part(2..10));
        assert_eq!(parse_range(Some("bytes=10-"), 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), RangeAsk::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=4-2"), 10), RangeAsk::Whole);
    }

    #[test]
    fn sniffing() {
        assert!(sniff(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0", false).is_err());
        assert_eq!(sniff(b"hello world\n", false).map(|s| s.mime).ok().as_deref(), Some("text/plain"));
        assert!(sniff(b"hello", true).is_err());
        assert!(sniff(&[0u8, 1, 2, 3, 200, 201], false).is_err());
    }
}
