//! Rate limits of login and registration (`[throttle]`), per client address and per account.
//!
//! Each limit is a GCRA bucket per key (the `governor` crate): `burst` attempts at once, then
//! one more every `1/rate`. A refused attempt is answered `429 rate_limited` with
//! `Retry-After` (header) and `retry_after` (body) saying when the next one would pass; it costs
//! no database read and no bcrypt, so a flood is cheap to refuse.
//!
//! - `POST /api/v1/auth/login` counts against the client's address ([`crate::proxy`]) in
//!   [`throttle_middleware`], and against the account it names in [`Throttle::login_account`],
//!   which the handler calls before it looks the account up. The account key is the lower-cased
//!   username or phone as given, known or not: an unknown name is throttled exactly like a known
//!   one, so the answer never tells whether an account exists.
//! - `POST /api/v1/auth/register` counts against the client's address.
//!
//! Keys: an IPv4 address, or the /64 prefix of an IPv6 address (one subscriber usually holds a
//! whole /64); accounts by a 128-bit digest of the name (fixed size, whatever the input). Memory
//! is bounded: [`Throttle::sweep`] (every [`SWEEP_EVERY`]) evicts keys whose bucket is full
//! again, and a limit that still tracks `throttle.max_tracked_keys` keys puts the ones it sees
//! next into one shared overflow bucket until the sweep makes room.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::config::ThrottleSection;
use crate::error::ApiError;
use crate::state::AppState;

/// How often idle keys are evicted.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The key every request shares while a limit is over `max_tracked_keys`.
const OVERFLOW: u128 = u128::MAX;

/// The paths limited by address (as routed: percent-decoded).
pub const LOGIN_PATH: &str = "/api/v1/auth/login";
/// See [`LOGIN_PATH`].
pub const REGISTER_PATH: &str = "/api/v1/auth/register";

type Keyed = RateLimiter<u128, HashMapStateStore<u128>, DefaultClock>;

/// How often a limit that is full may sweep itself between the regular sweeps: a sweep walks
/// every key, so one per attempt would let a flood buy a full scan per request.
const FULL_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// One keyed limit, or none when its rate is 0.
struct Limit {
    name: &'static str,
    limiter: Option<Keyed>,
    max_keys: usize,
    /// When a full limit last swept itself.
    last_full_sweep: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Limit {
    fn new(name: &'static str, per: Duration, rate: u32, burst: u32, max_keys: usize) -> Self {
        let limiter = NonZeroU32::new(rate).and_then(|r| {
            let quota = Quota::with_period(per / r.get())?;
            Some(RateLimiter::hashmap(quota.allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))))
        });
        Limit { name, limiter, max_keys, last_full_sweep: std::sync::Mutex::new(None) }
    }

    /// Takes one attempt for `key`; the seconds to wait when refused.
    fn check(&self, key: u128) -> Result<(), u64> {
        let Some(l) = &self.limiter else { return Ok(()) };
        let mut key = key;
        if l.len() >= self.max_keys {
            if self.may_sweep_now() {
                l.retain_recent();
            }
            if l.len() >= self.max_keys {
                log::warn!(limit = self.name, keys = l.len(); "rate limit tracks its most keys; new ones share one bucket");
                key = OVERFLOW;
            }
        }
        l.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(l.clock().now());
            // Whole seconds, rounded up: retrying after that passes.
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// True at most once per [`FULL_SWEEP_EVERY`].
    fn may_sweep_now(&self) -> bool {
        let mut last = self.last_full_sweep.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < FULL_SWEEP_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    fn sweep(&self) -> usize {
        let Some(l) = &self.limiter else { return 0 };
        l.retain_recent();
        l.shrink_to_fit();
        l.len()
    }
}

/// The node's login and registration limits.
pub struct Throttle {
    login_address: Limit,
    login_account: Limit,
    register_address: Limit,
}

impl Throttle {
    /// The limits of `[throttle]`.
    pub fn new(s: &ThrottleSection) -> Self {
        let min = Duration::from_secs(60);
        let hour = Duration::from_secs(3600);
        let n = s.max_tracked_keys;
        let on = |rate: u32| if s.enabled { rate } else { 0 };
        Throttle {
            login_address: Limit::new("login_address", min, on(s.login_address_per_min), s.login_address_burst, n),
            login_account: Limit::new("login_account", min, on(s.login_account_per_min), s.login_account_burst, n),
            register_address: Limit::new(
                "register_address",
                hour,
                on(s.register_address_per_hour),
                s.register_address_burst,
                n,
            ),
        }
    }

    /// Counts a login attempt naming `login` (a username or a phone number, existing or not).
    pub fn login_account(&self, login: &str) -> Result<(), ApiError> {
        self.login_account.check(account_key(login)).map_err(refused)
    }

    /// Counts a login attempt from `addr`.
    pub fn login_address(&self, addr: IpAddr) -> Result<(), ApiError> {
        self.login_address.check(address_key(addr)).map_err(refused)
    }

    /// Counts a registration from `addr`.
    pub fn register_address(&self, addr: IpAddr) -> Result<(), ApiError> {
        self.register_address.check(address_key(addr)).map_err(refused)
    }

    /// Evicts the keys whose bucket is full again (they behave as new ones); returns how many
    /// keys are still tracked.
    pub fn sweep(&self) -> usize {
        self.login_address.sweep() + self.login_account.sweep() + self.register_address.sweep()
    }
}

/// 429 `rate_limited`, the same for every limit (which one refused is nobody's business).
fn refused(wait_secs: u64) -> ApiError {
    let secs = i64::try_from(wait_secs).unwrap_or(i64::MAX);
    ApiError::too_many(schema::error::ErrorCode::RateLimited, "too many attempts; retry later", secs)
}

/// The limiter key of a client address: IPv4 as is, IPv6 by its /64.
pub fn address_key(addr: IpAddr) -> u128 {
    match addr.to_canonical() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) >> 64 << 64) | 1,
    }
}

/// The limiter key of a login name: a digest of its lower-cased, trimmed form.
pub fn account_key(login: &str) -> u128 {
    let digest = Sha256::digest(login.trim().to_lowercase().as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first) & !1 // never OVERFLOW
}

/// The client address the request was attributed to ([`crate::middleware::client_addr`] puts it
/// in the request's extensions).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// Counts `POST` login and registration attempts against the client's address, before anything
/// else of the request runs.
pub async fn throttle_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.method() == Method::POST {
        // The path as the router sees it (percent-decoded), so `/api/v1/auth/%6Cogin` counts.
        let path = req.match_info().as_str();
        let check = match path {
            LOGIN_PATH => Some(Throttle::login_address as fn(&Throttle, IpAddr) -> Result<(), ApiError>),
            REGISTER_PATH => Some(Throttle::register_address as fn(&Throttle, IpAddr) -> Result<(), ApiError>),
            _ => None,
        };
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let addr = req.extensions().get::<ClientAddr>().copied();
        if let (Some(check), Some(state), Some(ClientAddr(addr))) = (check, state, addr) {
            if let Err(e) = check(&state.throttle, addr) {
                // Debug: the access line already records the 429, and a flood must not double it.
                log::debug!(target: "im::throttle", client:% = addr, path = path; "refused: {}", e.message);
                let resp = e.error_response();
                return Ok(req.into_response(resp));
            }
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Evicts idle keys every [`SWEEP_EVERY`].
pub fn spawn_sweeper(state: &web::Data<AppState>) {
    let state = state.clone();
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            let kept = state.throttle.sweep();
            log::debug!(target: "im::throttle", keys = kept; "idle rate-limit keys evicted");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ThrottleSection {
        ThrottleSection {
            enabled: true,
            login_address_per_min: 1,
            login_address_burst: 3,
            login_account_per_min: 1,
            login_account_burst: 2,
            register_address_per_hour: 1,
            register_address_burst: 1,
            max_tracked_keys: 1000,
        }
    }

    #[test]
    fn a_burst_passes_then_the_next_attempt_waits() {
        let t = Throttle::new(&settings());
        let a: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..3 {
            assert!(t.login_address(a).is_ok());
        }
        let e = t.login_address(a).err();
        assert_eq!(e.as_ref().map(|e| (e.status.as_u16(), e.code)), Some((429, schema::error::ErrorCode::RateLimited)));
        // One attempt a minute: the next one passes in at most 60 s.
        let wait = e.and_then(|e| e.retry_after).unwrap_or(0);
        assert!((1..=60).contains(&wait), "{wait}");
        // Another address is not affected.
        assert!(t.login_address([192, 0, 2, 2].into()).is_ok());
    }

    #[test]
    fn accounts_are_keyed_by_name_whatever_its_case() {
        let t = Throttle::new(&settings());
        assert!(t.login_account("Alice").is_ok());
        assert!(t.login_account(" alice").is_ok());
        assert!(t.login_account("ALICE").is_err());
        assert!(t.login_account("nobody-by-this-name").is_ok());
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or(IpAddr::from([0u8; 16]));
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap_or(IpAddr::from([0u8; 16]));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0u8; 16]));
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        // An IPv4-mapped address is the IPv4 address.
        let m: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or(IpAddr::from([0u8; 16]));
        assert_eq!(address_key(m), address_key([192, 0, 2, 1].into()));
    }

    #[test]
    fn a_rate_of_zero_turns_a_limit_off() {
        let t = Throttle::new(&ThrottleSection { register_address_per_hour: 0, ..settings() });
        for _ in 0..100 {
            assert!(t.register_address([192, 0, 2, 1].into()).is_ok());
        }
    }

    #[test]
    fn enabled_false_turns_every_limit_off() {
        let t = Throttle::new(&ThrottleSection { enabled: false, ..settings() });
        for _ in 0..100 {
            assert!(t.login_address([192, 0, 2, 1].into()).is_ok());
            assert!(t.login_account("alice").is_ok());
            assert!(t.register_address([192, 0, 2, 1].into()).is_ok());
        }
    }

    #[test]
    fn keys_are_bounded_and_idle_ones_evicted() {
        let t = Throttle::new(&ThrottleSection { login_account_burst: 1, ..settings() });
        for i in 0..1500 {
            let _ = t.login_account(&format!("user{i}"));
        }
        // Past 1,000 keys new names share the overflow bucket (burst 1: one passes).
        let tracked = t.login_account.limiter.as_ref().map_or(0, |l| l.len());
        assert!(tracked <= 1001, "{tracked} keys tracked");
        assert!(t.login_account("someone-new").is_err(), "over the limit, new names share one bucket");
        // Nothing is idle yet (each bucket is empty), so the sweep keeps them.
        assert!(t.sweep() > 0);
    }
}
