//! Message search: `GET /api/v1/search/messages?q=&conv=&before=&limit=` over the messages the
//! caller may read. The rules of who reads what are those of history ([`crate::ws::access`]:
//! join and leave points, cleared history); the store finds the matches
//! ([`actors::store::MessageStore::search`]: FTS5 trigram on SQLite, `pg_trgm` on PostgreSQL, a
//! case-insensitive regex on MongoDB); delete-for-me is applied here.

use actix_web::{get, web, HttpResponse};
use schema::db::conversations;
use schema::message::{SearchCursor, SearchScope};
use schema::protocol::WireMessage;
use schema::{ConvId, ConvKind, UserId};
use serde::{Deserialize, Serialize};

use crate::auth::Authed;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// Longest query (characters, after trimming).
pub const QUERY_MAX_CHARS: usize = 100;
/// Largest `limit`.
pub const MAX_LIMIT: i64 = 50;
/// `limit` when none is given.
pub const DEFAULT_LIMIT: i64 = 20;
/// Most store round trips one page may take when delete-for-me hides matches.
const MAX_ROUNDS: usize = 8;

/// Routes of this module under `/api/v1`.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(search_messages);
}

/// `?q=&conv=&before=&limit=` of a message search.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// What to look for: 1 to 100 characters after trimming, matched as a case-insensitive
    /// substring of the (latest) body.
    q: String,
    /// Only this conversation (`d:<a>:<b>` or `g:<id>`).
    conv: Option<String>,
    /// The `next_before` of the previous page.
    before: Option<String>,
    /// 1 to 50 (default 20).
    limit: Option<i64>,
}

/// One match.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    /// The message, as history shows it (latest body).
    pub message: WireMessage,
    /// Where the query occurs in `message.body`: `[start, end)` offsets in Unicode characters
    /// (code points), in order, not overlapping.
    pub highlights: Vec<[usize; 2]>,
}

/// A page of matches, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchPage {
    /// The matches.
    pub items: Vec<SearchHit>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<String>,
}

crate::errors!(
    /// Errors of `GET /search/messages`.
    SearchErrors: InvalidQuery, InvalidLimit, ConversationNotFound
);

/// `GET /search/messages?q=&conv=&before=&limit=`: my readable messages that contain `q`, newest
/// first.
#[utoipa::path(tag = "conversations", security(("bearer" = [])), params(SearchParams), responses(
    (status = 200, description = "A page of matches, newest first", body = SearchPage), SearchErrors))]
#[get("/search/messages")]
async fn search_messages(
    state: web::Data<AppState>,
    me: Authed,
    params: web::Query<SearchParams>,
) -> ApiResult<HttpResponse> {
    let params = params.into_inner();
    let q = params.q.trim().to_owned();
    let n = q.chars().count();
    if n == 0 || n > QUERY_MAX_CHARS {
        return Err(ApiError::new(ErrorCode::InvalidQuery, "q must be 1 to 100 characters"));
    }
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::new(ErrorCode::InvalidLimit, format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let mut before = match params.before.as_deref() {
        Some(b) => Some(parse_cursor(b).ok_or_else(|| ApiError::new(ErrorCode::InvalidQuery, "bad before cursor"))?),
        None => None,
    };
    let user = me.id();
    let scopes = scopes(&state, user, params.conv).await?;
    let mut items: Vec<SearchHit> = Vec::new();
    let mut more = false;
    for _ in 0..MAX_ROUNDS {
        let want = limit - items.len() as i64;
        let found = state
            .hub
            .store
            .search(scopes.clone(), q.clone(), before.clone(), want + 1)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
        more = found.len() as i64 > want;
        let Some(last) = found.get(found.len().min(want as usize).wrapping_sub(1)) else { break };
        before = Some(SearchCursor { ts: last.ts, conv: last.conv.clone(), seq: last.seq });
        let page: Vec<_> = found.into_iter().take(want as usize).collect();
        let hidden = hidden_of(&state, user, &page).await?;
        for m in &page {
            if hidden.contains(&(m.conv.clone(), m.seq)) {
                continue;
            }
            let highlights = m.body.as_deref().map(|b| highlights(b, &q)).unwrap_or_default();
            items.push(SearchHit { message: WireMessage::from(m), highlights });
        }
        if !more || items.len() as i64 >= limit {
            break;
        }
    }
    let next_before = if more { before.map(|c| format!("{}:{}:{}", c.ts, c.seq, c.conv.as_str())) } else { None };
    Ok(HttpResponse::Ok().json(SearchPage { items, next_before }))
}

/// `ts:seq:conv` back into a cursor.
fn parse_cursor(s: &str) -> Option<SearchCursor> {
    let mut parts = s.splitn(3, ':');
    let ts = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let conv = ConvId(parts.next()?.to_owned());
    conv.kind()?;
    Some(SearchCursor { ts, conv, seq })
}

/// The conversations (with their readable seqs) a search of `user` covers: `conv` alone, or all
/// they have a state in.
async fn scopes(state: &AppState, user: UserId, conv: Option<String>) -> ApiResult<Vec<SearchScope>> {
    let not_found = || ApiError::new(ErrorCode::ConversationNotFound, "no such conversation of yours");
    let convs: Vec<ConvId> = match conv {
        Some(c) => {
            let c = ConvId(c);
            match c.kind() {
                Some(ConvKind::Direct(..)) if c.peer_of(user).is_some() => {}
                Some(ConvKind::Group(_)) => {}
                _ => return Err(not_found()),
            }
            vec![c]
        }
        None => {
            state.db.read(move |db| conversations::conv_ids_of(db, user.0)).await?.into_iter().map(ConvId).collect()
        }
    };
    let single = convs.len() == 1;
    let mut out = Vec::with_capacity(convs.len());
    for c in convs {
        match crate::ws::access(&state.hub, user, &c).await {
            Ok((floor, ceiling)) if ceiling > floor => out.push(SearchScope { conv: c, floor, ceiling }),
            Ok(_) => {}
            Err(_) if single => return Err(not_found()),
            Err(_) => {}
        }
    }
    Ok(out)
}

/// Which of `page` `user` deleted for themselves.
async fn hidden_of(
    state: &AppState,
    user: UserId,
    page: &[schema::message::MessageRecord],
) -> ApiResult<std::collections::HashSet<(ConvId, i64)>> {
    let mut spans: std::collections::BTreeMap<ConvId, (i64, i64)> = std::collections::BTreeMap::new();
    for m in page {
        let e = spans.entry(m.conv.clone()).or_insert((m.seq, m.seq));
        *e = (e.0.min(m.seq), e.1.max(m.seq));
    }
    let mut out = std::collections::HashSet::new();
    for (conv, (lo, hi)) in spans {
        let c = conv.clone();
        let seqs = state.db.read(move |db| conversations::hidden_between(db, user.0, c.as_str(), lo, hi)).await?;
        out.extend(seqs.into_iter().map(|s| (conv.clone(), s)));
    }
    Ok(out)
}

/// `[start, end)` character offsets of each case-insensitive occurrence of `q` in `body`.
pub fn highlights(body: &str, q: &str) -> Vec<[usize; 2]> {
    let fold = |c: char| c.to_lowercase().next().unwrap_or(c);
    let hay: Vec<char> = body.chars().map(fold).collect();
    let needle: Vec<char> = q.chars().map(fold).collect();
    let mut out = Vec::new();
    if needle.is_empty() {
        return out;
    }
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if hay[i..i + needle.len()] == needle[..] {
            out.push([i, i + needle.len()]);
            i += needle.len();
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_count_characters_and_ignore_case() {
        assert_eq!(highlights("Hello hello", "HELLO"), vec![[0, 5], [6, 11]]);
        assert_eq!(highlights("我们明天见，明天", "明天"), vec![[2, 4], [6, 8]]);
        assert_eq!(highlights("aaaa", "aa"), vec![[0, 2], [2, 4]]);
        assert!(highlights("abc", "x").is_empty());
    }

    #[test]
    fn cursors_round_trip() {
        let c = parse_cursor("17:3:g:5").map(|c| (c.ts, c.seq, c.conv.0));
        assert_eq!(c, Some((17, 3, "g:5".to_owned())));
        assert!(parse_cursor("x:1:g:5").is_none());
        assert!(parse_cursor("1:1:nope").is_none());
    }
}
