//! Shared set-up through the public HTTP API, concurrently with a bound: users, logins,
//! friendships. Every scenario builds its population here.

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::api::{Api, User};
use crate::progress::Progress;

/// Runs `f` over `items` with at most `concurrency` in flight; results in input order.
pub async fn bounded<T, R, F, Fut>(items: Vec<T>, concurrency: usize, f: F) -> anyhow::Result<Vec<R>>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = anyhow::Result<R>>,
{
    stream::iter(items).map(f).buffered(concurrency.max(1)).try_collect().await
}

/// A prefix for this run's usernames, unique enough to reuse a database: `lg` + base-36 seconds.
pub fn run_prefix() -> String {
    let mut n = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut s = String::new();
    while n > 0 {
        let d = (n % 36) as u32;
        s.insert(0, char::from_digit(d, 36).unwrap_or('0'));
        n /= 36;
    }
    format!("lg{s}")
}

/// Usernames `{prefix}_{i}` for `i` in `0..n` (at most 32 characters for any sane prefix).
pub fn usernames(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}_{i}")).collect()
}

/// Registers every name (counter 0 of `progress` counts them).
pub async fn register_all(
    api: &Api,
    names: &[String],
    concurrency: usize,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<i64>> {
    progress.setup_phase("register", names.len());
    bounded(names.to_vec(), concurrency, |name| async move {
        let id = api.register(&name).await?;
        progress.add(0, 1);
        Ok(id)
    })
    .await
}

/// Logs every name in as a new device (counter 0 of `progress` counts them).
pub async fn login_all(
    api: &Api,
    names: &[String],
    concurrency: usize,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<User>> {
    progress.setup_phase("login", names.len());
    bounded(names.to_vec(), concurrency, |name| async move {
        let u = api.login(&name).await?;
        progress.add(0, 1);
        Ok(u)
    })
    .await
}

/// Registers and logs in `n` users named `{prefix}_{i}`.
pub async fn users(
    api: &Api,
    prefix: &str,
    n: usize,
    concurrency: usize,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<User>> {
    let names = usernames(prefix, n);
    register_all(api, &names, concurrency, progress).await.context("registering users")?;
    login_all(api, &names, concurrency, progress).await.context("logging users in")
}

/// Makes each pair friends (request + accept; counter 0 of `progress` counts pairs).
pub async fn befriend_pairs(
    api: &Api,
    pairs: &[(User, User)],
    concurrency: usize,
    progress: &Arc<Progress>,
) -> anyhow::Result<()> {
    progress.setup_phase("friends", pairs.len());
    bounded(pairs.to_vec(), concurrency, |(a, b)| async move {
        api.befriend(&a, &b).await?;
        progress.add(0, 1);
        Ok(())
    })
    .await
    .context("making friends")?;
    Ok(())
}

/// `2 * pairs` users paired as (0, 1), (2, 3), ... and made friends.
pub async fn friend_pairs(
    api: &Api,
    prefix: &str,
    pairs: usize,
    concurrency: usize,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<(User, User)>> {
    let users = users(api, prefix, pairs * 2, concurrency, progress).await?;
    let mut it = users.into_iter();
    let mut out = Vec::with_capacity(pairs);
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a, b));
    }
    befriend_pairs(api, &out, concurrency, progress).await?;
    Ok(out)
}

/// Splits `users` into groups of `members` (the first of each is its owner): each owner creates
/// a group and an invite link with `members - 1` uses, and every other member joins through the
/// link (counter 0 of `progress` counts joins). Returns each group with its members, owner first.
pub async fn groups_by_invite(
    api: &Api,
    prefix: &str,
    users: Vec<User>,
    members: usize,
    concurrency: usize,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<(crate::api::Group, Vec<User>)>> {
    let members = members.max(1);
    let chunks: Vec<Vec<User>> = users.chunks(members).map(<[User]>::to_vec).collect();
    progress.setup_phase("groups", chunks.len());
    let made = bounded(chunks, concurrency, |chunk| async move {
        let owner = chunk.first().context("an empty group")?;
        let group = api.create_group(owner, &format!("{prefix} load {}", owner.id)).await?;
        let token = if chunk.len() > 1 {
            Some(api.create_invite(owner, group.id, chunk.len() as i64 - 1).await?)
        } else {
            None
        };
        progress.add(0, 1);
        Ok((group, token, chunk))
    })
    .await
    .context("creating groups")?;
    let joins: Vec<(i64, String, User)> = made
        .iter()
        .filter_map(|(g, t, chunk)| t.as_ref().map(|t| (g, t, chunk)))
        .flat_map(|(g, t, chunk)| chunk.iter().skip(1).map(move |u| (g.id, t.clone(), u.clone())))
        .collect();
    progress.setup_phase("join", joins.len());
    bounded(joins, concurrency, |(gid, token, u)| async move {
        api.join_group(&u, &token, gid).await?;
        progress.add(0, 1);
        Ok(())
    })
    .await
    .context("joining groups by invite link")?;
    Ok(made.into_iter().map(|(g, _, chunk)| (g, chunk)).collect())
}

/// The 1:1 conversation id of two users (`d:<low>:<high>`).
pub fn direct_conv(a: &User, b: &User) -> schema::ConvId {
    schema::ConvId::direct(schema::UserId(a.id), schema::UserId(b.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_username_rules() {
        let p = run_prefix();
        assert!(p.starts_with("lg") && p.len() <= 10, "{p}");
        for n in usernames(&p, 3).iter().chain([format!("{p}_9999999")].iter()) {
            assert!(n.len() <= 32 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{n}");
        }
    }

    #[actix_rt::test]
    async fn bounded_keeps_order() -> anyhow::Result<()> {
        let out = bounded((0..50).collect(), 4, |i: u32| async move {
            actix_rt::time::sleep(std::time::Duration::from_micros(u64::from(50 - i))).await;
            Ok(i * 2)
        })
        .await?;
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        Ok(())
    }
}
