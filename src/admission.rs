//! Admission across sessions: who may create a session or open a socket, and how fast a
//! client that gets the access token wrong is answered. One `AdmissionDo` (edge) holds an
//! [`Admission`] for the whole Worker; a session never waits on it except when a socket opens
//! or closes.
//!
//! | rule | default | on breach |
//! |---|---|---|
//! | sessions created per client address | 10/min, burst 20; an IPv6 /48 4× that | `429 too_many_sessions` + `Retry-After` |
//! | sessions that exist at once | 10,000 (`MAX_SESSIONS`) | `503 session_limit_reached` + `Retry-After` |
//! | sockets per client address, all sessions | 32 (`SOCKETS_PER_CLIENT`); an IPv6 /48 128 | `429 too_many_connections` |
//! | wrong access tokens per client address | 20 per minute (a missing token is not counted) | `429 too_many_failures` for a minute, before the token is looked at |
//!
//! A client is its address ([`client_of`]: `CF-Connecting-IP` as Cloudflare sets it; under
//! `wrangler dev` one local bucket, since there the header is whatever the client sent). An
//! IPv6 address counts by its /64, which one user usually holds whole, and also by its /48
//! ([`network_key`]), which holds [`NETWORK_SHARE`] times a client's share of sessions and
//! sockets: a home line is often a /56 (256 /64s), so without it one line could create 256 ×
//! the burst at once. The global cap stays exposed to clients with many networks (many /48s
//! or many IPv4 addresses): each holds its own share. Buckets and leases are soft state:
//! if the object restarts they start afresh (lenient, never stuck), and sessions renew their
//! sockets' leases from their sweep, so a lease whose socket died unseen lapses after
//! [`SOCKET_LEASE_MS`]. The count of sessions is the one durable number. Memory is bounded:
//! at most [`MAX_CLIENTS`] addresses are tracked, idle ones forgotten first.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::protocol::HttpErrorCode;

/// Wrong tokens a client may send within [`AUTH_WINDOW_MS`] before it is blocked.
pub const AUTH_FAILURES_ALLOWED: u32 = 20;
pub const AUTH_WINDOW_MS: u64 = 60_000;
/// How long a client that guessed too often is refused.
pub const AUTH_BLOCK_MS: u64 = 60_000;
/// A socket lease not renewed for this long no longer counts (its session renews every sweep).
pub const SOCKET_LEASE_MS: u64 = 10 * 60_000;
/// Client addresses tracked at most; past it the longest-idle entry is forgotten.
pub const MAX_CLIENTS: usize = 50_000;
/// How long a refusal for the global cap asks the client to wait.
pub const SESSION_CAP_RETRY_MS: u64 = 60_000;
/// An IPv6 /48 may hold this many times one client's (/64's) sessions a minute, burst and
/// sockets.
pub const NETWORK_SHARE: u32 = 4;
/// The bucket every request counts in under `wrangler dev`.
pub const LOCAL_CLIENT: &str = "local";

/// The configurable limits (see [`crate::config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionLimits {
    pub sessions_per_min: u32,
    pub session_burst: u32,
    pub max_sessions: u64,
    pub sockets_per_client: u32,
}

pub use crate::protocol::wire::Refusal;

/// A refusal of admission's, with how long to wait when waiting helps.
fn refusal(
    status: u16,
    code: HttpErrorCode,
    message: String,
    retry_after_ms: Option<u64>,
) -> Refusal {
    Refusal {
        retry_after_ms,
        ..Refusal::new(status, code, message)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Client {
    /// Session-creation bucket (`None` = full).
    tokens: Option<f64>,
    /// When `tokens` was last refilled (its own clock: a socket or a guess adds nothing).
    #[serde(default)]
    bucket_ms: u64,
    last_ms: u64,
    failures: u32,
    window_start: u64,
    blocked_until: u64,
    sockets: u32,
}

impl Client {
    /// The session bucket refilled to `now` (`per_ms` tokens a millisecond, at most `burst`).
    fn refill(&mut self, per_ms: f64, burst: f64, now: u64) -> f64 {
        let elapsed = now.saturating_sub(self.bucket_ms) as f64;
        let tokens = (self.tokens.unwrap_or(burst) + elapsed * per_ms).min(burst);
        self.bucket_ms = self.bucket_ms.max(now);
        self.last_ms = self.last_ms.max(now);
        self.tokens = (tokens < burst).then_some(tokens);
        tokens
    }

    fn forgettable(&self, now: u64) -> bool {
        self.tokens.is_none()
            && self.sockets == 0
            && self.blocked_until <= now
            && self.failures == 0
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Admission {
    sessions: u64,
    clients: HashMap<String, Client>,
    /// lease id → (client, last renewed).
    leases: HashMap<String, (String, u64)>,
    last_prune: u64,
}

/// The key a client address counts under: IPv4 as is, IPv6 by its first four groups (/64).
pub fn client_key(addr: &str) -> String {
    let addr = addr.trim().trim_start_matches('[').trim_end_matches(']');
    if !addr.contains(':') {
        return addr.to_string();
    }
    // Expand `::` just enough to take the first four groups.
    let (head, tail) = addr.split_once("::").unwrap_or((addr, ""));
    let head: Vec<&str> = head.split(':').filter(|g| !g.is_empty()).collect();
    let tail_n = tail.split(':').filter(|g| !g.is_empty()).count();
    let mut groups: Vec<String> = head.iter().map(|g| g.to_ascii_lowercase()).collect();
    if addr.contains("::") {
        groups.extend(std::iter::repeat_n(
            "0".to_string(),
            8usize.saturating_sub(head.len() + tail_n),
        ));
    }
    groups.truncate(4);
    format!("{}::/64", groups.join(":"))
}

/// The wider bucket a client also counts in: an IPv6 client's /48 (from its /64 key);
/// `None` for IPv4 and the local bucket.
pub fn network_key(client: &str) -> Option<String> {
    let groups: Vec<&str> = client.strip_suffix("::/64")?.split(':').collect();
    (groups.len() == 4).then(|| format!("{}::/48", groups[..3].join(":")))
}

/// Which client a request counts as. Deployed, Cloudflare sets `CF-Connecting-IP` to the
/// peer's address, replacing any the client sent. Under `wrangler dev` (`local`) the header
/// is the client's own if it sent one (wrangler sets it from the socket only when absent), so
/// it is not read: every local request counts in one bucket, [`LOCAL_CLIENT`]. That is the
/// only sound choice there, since the Worker never sees the peer address itself, and a
/// `wrangler dev` listening on loopback serves one machine anyway.
pub fn client_of(connecting_ip: Option<&str>, local: bool) -> String {
    match connecting_ip.map(str::trim).filter(|ip| !ip.is_empty()) {
        Some(ip) if !local => client_key(ip),
        _ => LOCAL_CLIENT.to_string(),
    }
}

/// Whether a request reached `wrangler dev` rather than Cloudflare: its URL is plain `http`
/// on a loopback host, or its `Host` is loopback. Cloudflare's edge reaches a Worker only by
/// its own name, so a loopback name never arrives deployed. A local client may send any
/// `Host`, but not the scheme: wrangler builds the URL's scheme from its own listening socket
/// (plain HTTP unless started with `--local-protocol https`).
pub fn is_local(url_scheme: &str, url_host: &str, host_header: &str) -> bool {
    let loopback = |h: &str| {
        let h = h.trim().to_ascii_lowercase();
        let name = match h.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or_default().to_string(),
            None => h.rsplit_once(':').map_or(h.clone(), |(n, _)| n.to_string()),
        };
        name == "localhost" || name == "::1" || name.starts_with("127.")
    };
    url_scheme == "http" || loopback(url_host) || loopback(host_header)
}

impl Admission {
    pub fn new(sessions: u64) -> Self {
        Admission {
            sessions,
            ..Default::default()
        }
    }

    /// Sessions counted as existing (the durable number).
    pub fn sessions(&self) -> u64 {
        self.sessions
    }

    fn client(&mut self, key: &str, now: u64) -> &mut Client {
        if !self.clients.contains_key(key) && self.clients.len() >= MAX_CLIENTS {
            self.prune(now, true);
        }
        self.clients
            .entry(key.to_string())
            .or_insert_with(|| Client {
                last_ms: now,
                ..Default::default()
            })
    }

    /// A client wants a new session.
    pub fn create_session(
        &mut self,
        client: &str,
        limits: &AdmissionLimits,
        now: u64,
    ) -> Result<(), Refusal> {
        self.maybe_prune(now);
        if self.sessions >= limits.max_sessions {
            return Err(refusal(
                503,
                HttpErrorCode::SessionLimitReached,
                format!(
                    "BotArmy holds its maximum of {} sessions; try again later.",
                    limits.max_sessions
                ),
                Some(SESSION_CAP_RETRY_MS),
            ));
        }
        let per_ms = limits.sessions_per_min as f64 / 60_000.0;
        let burst = limits.session_burst as f64;
        let share = NETWORK_SHARE as f64;
        // The client's own bucket, and its network's (a /48) at NETWORK_SHARE times the rate:
        // both must hold a token, and both give one.
        let mut buckets = vec![(client.to_string(), per_ms, burst, false)];
        if let Some(net) = network_key(client) {
            buckets.push((net, per_ms * share, burst * share, true));
        }
        let mut wait: Option<(u64, bool)> = None;
        for (key, per_ms, burst, network) in &buckets {
            let tokens = self.client(key, now).refill(*per_ms, *burst, now);
            if tokens < 1.0 {
                let ms = ((1.0 - tokens) / per_ms).ceil() as u64;
                if wait.is_none_or(|(w, _)| ms > w) {
                    wait = Some((ms, *network));
                }
            }
        }
        if let Some((wait, network)) = wait {
            let (who, rate) = if network {
                (
                    "your network (its /48)",
                    limits.sessions_per_min * NETWORK_SHARE,
                )
            } else {
                ("your address", limits.sessions_per_min)
            };
            return Err(refusal(
                429,
                HttpErrorCode::TooManySessions,
                format!(
                    "Too many new sessions from {who} (at most {rate} a minute); try again in {} s.",
                    wait.div_ceil(1000).max(1)
                ),
                Some(wait),
            ));
        }
        for (key, _, burst, _) in &buckets {
            let c = self.client(key, now);
            c.tokens = Some(c.tokens.unwrap_or(*burst) - 1.0);
        }
        self.sessions += 1;
        Ok(())
    }

    /// A session was deleted or expired.
    pub fn session_removed(&mut self) {
        self.sessions = self.sessions.saturating_sub(1);
    }

    /// A client opens a socket; `lease` names it until [`Admission::close_socket`].
    pub fn open_socket(
        &mut self,
        client: &str,
        lease: &str,
        limits: &AdmissionLimits,
        now: u64,
    ) -> Result<(), Refusal> {
        self.maybe_prune(now);
        if self.leases.contains_key(lease) {
            return Ok(());
        }
        let network = network_key(client);
        let net_cap = limits.sockets_per_client.saturating_mul(NETWORK_SHARE);
        if let Some(net) = &network {
            if self.client(net, now).sockets >= net_cap {
                return Err(refusal(
                    429,
                    HttpErrorCode::TooManyConnections,
                    format!(
                        "Your network (its /48) already holds {net_cap} connections to BotArmy; close some tabs."
                    ),
                    None,
                ));
            }
        }
        let c = self.client(client, now);
        if c.sockets >= limits.sockets_per_client {
            return Err(refusal(
                429,
                HttpErrorCode::TooManyConnections,
                format!(
                    "Your address already holds {} connections to BotArmy; close some tabs.",
                    limits.sockets_per_client
                ),
                None,
            ));
        }
        for key in std::iter::once(client.to_string()).chain(network) {
            let c = self.client(&key, now);
            c.sockets += 1;
            c.last_ms = c.last_ms.max(now);
        }
        self.leases
            .insert(lease.to_string(), (client.to_string(), now));
        Ok(())
    }

    pub fn close_socket(&mut self, lease: &str) {
        if let Some((client, _)) = self.leases.remove(lease) {
            let network = network_key(&client);
            for key in std::iter::once(client).chain(network) {
                if let Some(c) = self.clients.get_mut(&key) {
                    c.sockets = c.sockets.saturating_sub(1);
                }
            }
        }
    }

    /// A session says these sockets are still open (re-adding any this object forgot).
    pub fn renew(&mut self, leases: &[(String, String)], now: u64) {
        for (lease, client) in leases {
            match self.leases.get_mut(lease) {
                Some(l) => l.1 = now,
                None => {
                    for key in std::iter::once(client.clone()).chain(network_key(client)) {
                        self.client(&key, now).sockets += 1;
                    }
                    self.leases.insert(lease.clone(), (client.clone(), now));
                }
            }
        }
    }

    /// A client is refused before its token is looked at: `Some(ms to wait)`.
    pub fn blocked(&self, client: &str, now: u64) -> Option<u64> {
        self.clients
            .get(client)
            .filter(|c| c.blocked_until > now)
            .map(|c| c.blocked_until - now)
    }

    /// A client sent a wrong token. `Some(ms)` when it is now blocked.
    pub fn auth_failed(&mut self, client: &str, now: u64) -> Option<u64> {
        self.maybe_prune(now);
        let c = self.client(client, now);
        if now.saturating_sub(c.window_start) > AUTH_WINDOW_MS {
            c.window_start = now;
            c.failures = 0;
        }
        c.failures += 1;
        c.last_ms = c.last_ms.max(now);
        if c.failures > AUTH_FAILURES_ALLOWED {
            c.blocked_until = now + AUTH_BLOCK_MS;
            c.failures = 0;
            return Some(AUTH_BLOCK_MS);
        }
        None
    }

    fn maybe_prune(&mut self, now: u64) {
        if now.saturating_sub(self.last_prune) >= 60_000 {
            self.prune(now, false);
        }
    }

    /// Lapses unrenewed leases, forgets clients with nothing to remember, and when `force`d
    /// at the cap, forgets the longest-idle client too.
    fn prune(&mut self, now: u64, force: bool) {
        self.last_prune = now;
        let lapsed: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, (_, at))| now.saturating_sub(*at) > SOCKET_LEASE_MS)
            .map(|(k, _)| k.clone())
            .collect();
        for lease in lapsed {
            self.close_socket(&lease);
        }
        for c in self.clients.values_mut() {
            if now.saturating_sub(c.window_start) > AUTH_WINDOW_MS {
                c.failures = 0;
            }
            if c.tokens.is_some() && now.saturating_sub(c.last_ms) > 10 * 60_000 {
                c.tokens = None;
            }
        }
        self.clients.retain(|_, c| !c.forgettable(now));
        if force && self.clients.len() >= MAX_CLIENTS {
            if let Some(oldest) = self
                .clients
                .iter()
                .filter(|(_, c)| c.sockets == 0)
                .min_by_key(|(_, c)| c.last_ms)
                .map(|(k, _)| k.clone())
            {
                self.clients.remove(&oldest);
            }
        }
    }

    /// Tracked client addresses and leases (for tests and stats).
    pub fn sizes(&self) -> (usize, usize) {
        (self.clients.len(), self.leases.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> AdmissionLimits {
        AdmissionLimits {
            sessions_per_min: 10,
            session_burst: 20,
            max_sessions: 1000,
            sockets_per_client: 3,
        }
    }

    #[test]
    fn a_client_gets_its_burst_then_a_retry_after() {
        let mut a = Admission::new(0);
        for i in 0..20 {
            assert!(a.create_session("1.2.3.4", &limits(), 0).is_ok(), "{i}");
        }
        let r = a.create_session("1.2.3.4", &limits(), 0).unwrap_err();
        assert_eq!((r.status, r.code.as_str()), (429, "too_many_sessions"));
        assert_eq!(r.retry_after_ms, Some(6000), "10 a minute: one every 6 s");
        assert_eq!(r.retry_after_secs(), Some(6));
        // Another address is not affected; the first gets one more after 6 s.
        assert!(a.create_session("5.6.7.8", &limits(), 0).is_ok());
        assert!(a.create_session("1.2.3.4", &limits(), 5_999).is_err());
        assert!(a.create_session("1.2.3.4", &limits(), 6_001).is_ok());
        assert_eq!(a.sessions(), 22);
    }

    #[test]
    fn the_global_cap_counts_existing_sessions_and_frees_on_removal() {
        let l = AdmissionLimits {
            max_sessions: 2,
            ..limits()
        };
        let mut a = Admission::new(1);
        assert!(a.create_session("a", &l, 0).is_ok());
        let r = a.create_session("b", &l, 0).unwrap_err();
        assert_eq!((r.status, r.code.as_str()), (503, "session_limit_reached"));
        a.session_removed();
        assert!(a.create_session("b", &l, 0).is_ok());
    }

    #[test]
    fn sockets_are_capped_per_client_across_sessions() {
        let mut a = Admission::new(0);
        for l in ["l1", "l2", "l3"] {
            assert!(a.open_socket("c", l, &limits(), 0).is_ok());
        }
        assert!(
            a.open_socket("c", "l3", &limits(), 0).is_ok(),
            "same lease twice is one"
        );
        let r = a.open_socket("c", "l4", &limits(), 0).unwrap_err();
        assert_eq!((r.status, r.code.as_str()), (429, "too_many_connections"));
        assert!(a.open_socket("other", "l5", &limits(), 0).is_ok());
        a.close_socket("l1");
        a.close_socket("l1");
        assert!(a.open_socket("c", "l4", &limits(), 0).is_ok());
    }

    #[test]
    fn unrenewed_leases_lapse_and_renewal_restores_forgotten_ones() {
        let mut a = Admission::new(0);
        for l in ["l1", "l2", "l3"] {
            a.open_socket("c", l, &limits(), 0).unwrap();
        }
        a.renew(&[("l1".into(), "c".into())], SOCKET_LEASE_MS);
        // l2 and l3 lapse at the next prune; l1 was renewed.
        assert!(a
            .open_socket("c", "l4", &limits(), SOCKET_LEASE_MS + 1)
            .is_ok());
        assert_eq!(a.sizes().1, 2);
        // An object that restarted learns the leases back from the sessions.
        let mut fresh = Admission::new(0);
        fresh.renew(
            &[
                ("x1".into(), "c".into()),
                ("x2".into(), "c".into()),
                ("x3".into(), "c".into()),
            ],
            0,
        );
        assert!(fresh.open_socket("c", "x4", &limits(), 0).is_err());
    }

    #[test]
    fn repeated_wrong_tokens_block_the_client_for_a_minute() {
        let mut a = Admission::new(0);
        for _ in 0..AUTH_FAILURES_ALLOWED {
            assert_eq!(a.auth_failed("c", 0), None);
        }
        assert_eq!(a.auth_failed("c", 0), Some(AUTH_BLOCK_MS));
        assert_eq!(a.blocked("c", 1), Some(AUTH_BLOCK_MS - 1));
        assert_eq!(a.blocked("other", 1), None);
        assert_eq!(a.blocked("c", AUTH_BLOCK_MS), None);
        // Failures spread out over time never block.
        let mut b = Admission::new(0);
        for i in 0..100 {
            assert_eq!(b.auth_failed("c", i * 10_000), None, "{i}");
        }
    }

    #[test]
    fn memory_is_bounded_by_forgetting_idle_clients() {
        let mut a = Admission::new(0);
        for i in 0..(MAX_CLIENTS + 500) {
            let _ = a.auth_failed(&format!("10.0.{}.{}", i / 256, i % 256), 0);
        }
        assert!(a.sizes().0 <= MAX_CLIENTS);
        // Clients with nothing to remember are forgotten at the next prune.
        let _ = a.create_session("x", &limits(), 10 * 60_000);
        let _ = a.create_session("y", &limits(), 30 * 60_000);
        assert!(a.sizes().0 <= 2, "{:?}", a.sizes());
    }

    /// The /64 key of the `i`-th /64 of one /56 (a home line).
    fn home_line(i: u32) -> String {
        client_key(&format!("2001:db8:1:{:x}::1", 0x4200 + i))
    }

    #[test]
    fn one_ipv6_line_of_256_slash_64s_creates_only_its_slash_48s_share_of_sessions() {
        let mut a = Admission::new(0);
        let burst = limits().session_burst * NETWORK_SHARE;
        let made = (0..256)
            .flat_map(|i| std::iter::repeat_n(home_line(i), 20))
            .filter(|c| a.create_session(c, &limits(), 0).is_ok())
            .count();
        assert_eq!(made, burst as usize, "not 256 × 20 = 5,120");
        let r = a.create_session(&home_line(255), &limits(), 0).unwrap_err();
        assert_eq!((r.status, r.code.as_str()), (429, "too_many_sessions"));
        assert!(r.message.contains("/48"), "{}", r.message);
        assert_eq!(r.retry_after_ms, Some(1500), "40 a minute: one every 1.5 s");
        // Another /48, and IPv4, are not affected; the line refills at four clients' rate.
        assert!(a
            .create_session(&client_key("2001:db8:2::1"), &limits(), 0)
            .is_ok());
        assert!(a.create_session("203.0.113.9", &limits(), 0).is_ok());
        assert!(a.create_session(&home_line(7), &limits(), 1_500).is_ok());
        assert!(a.create_session(&home_line(8), &limits(), 1_500).is_err());
    }

    #[test]
    fn filling_max_sessions_from_one_line_takes_hours_not_minutes() {
        // The line: 256 /64s at 10 a minute each filled 10,000 in about two minutes.
        let l = AdmissionLimits {
            max_sessions: 10_000,
            ..limits()
        };
        let mut a = Admission::new(0);
        let mut minute = 0;
        while a.sessions() < l.max_sessions && minute < 600 {
            // Each /64 asks once a minute (ten would be refused the same way, only slower).
            for i in 0..256 {
                let _ = a.create_session(&home_line(i), &l, minute * 60_000);
            }
            minute += 1;
        }
        assert!(
            a.sessions() <= 80 + 40 * minute,
            "{} in {minute} min",
            a.sessions()
        );
        assert!(minute >= 240, "filled after {minute} minutes");
    }

    #[test]
    fn a_full_slash_64_does_not_spend_its_networks_tokens() {
        let mut a = Admission::new(0);
        let me = home_line(0);
        for _ in 0..limits().session_burst {
            a.create_session(&me, &limits(), 0).unwrap();
        }
        for _ in 0..100 {
            assert!(a.create_session(&me, &limits(), 0).is_err());
        }
        // The rest of the line still has its network's remaining 60.
        let rest = (1..=60)
            .filter(|i| a.create_session(&home_line(*i), &limits(), 0).is_ok())
            .count();
        assert_eq!(rest, 60);
    }

    #[test]
    fn sockets_are_capped_per_slash_48_too_and_freed_with_their_lease() {
        let mut a = Admission::new(0);
        let cap = (limits().sockets_per_client * NETWORK_SHARE) as usize;
        let mut opened = Vec::new();
        for i in 0..(cap as u32 + 5) {
            let lease = format!("l{i}");
            if a.open_socket(&home_line(i), &lease, &limits(), 0).is_ok() {
                opened.push(lease);
            }
        }
        assert_eq!(opened.len(), cap);
        let r = a
            .open_socket(&home_line(99), "x", &limits(), 0)
            .unwrap_err();
        assert_eq!(r.code, "too_many_connections");
        assert!(r.message.contains("/48"));
        a.close_socket(&opened[0]);
        assert!(a.open_socket(&home_line(99), "x", &limits(), 0).is_ok());
        // A restarted object learns both counts back from the sessions' renewals.
        let mut fresh = Admission::new(0);
        let leases: Vec<(String, String)> = (0..cap as u32)
            .map(|i| (format!("r{i}"), home_line(i)))
            .collect();
        fresh.renew(&leases, 0);
        assert!(fresh
            .open_socket(&home_line(200), "y", &limits(), 0)
            .is_err());
    }

    #[test]
    fn a_socket_or_a_guess_does_not_cost_the_session_bucket_its_refill() {
        let mut a = Admission::new(0);
        for _ in 0..20 {
            a.create_session("c", &limits(), 0).unwrap();
        }
        // A socket opened at 59 s used to restart the refill clock: one minute refills ten.
        a.open_socket("c", "l", &limits(), 59_000).unwrap();
        let _ = a.auth_failed("c", 59_500);
        let made = (0..20)
            .filter(|_| a.create_session("c", &limits(), 60_000).is_ok())
            .count();
        assert_eq!(made, 10);
    }

    #[test]
    fn under_wrangler_dev_a_client_set_address_is_not_trusted() {
        // Deployed (https, the Worker's own name): Cloudflare's header, IPv6 by its /64.
        assert!(!is_local(
            "https",
            "botarmy.example.workers.dev",
            "botarmy.example.workers.dev"
        ));
        assert_eq!(client_of(Some("2001:db8::9"), false), "2001:db8:0:0::/64");
        assert_eq!(client_of(Some(" 203.0.113.9 "), false), "203.0.113.9");
        // wrangler dev: plain http, or a loopback name, whatever Host the client claims.
        for (scheme, url_host, host) in [
            ("http", "127.0.0.1", "127.0.0.1:8787"),
            (
                "http",
                "botarmy.example.workers.dev",
                "botarmy.example.workers.dev",
            ),
            ("https", "localhost", "localhost:8787"),
            ("https", "[::1]", "[::1]:8787"),
            ("https", "x.workers.dev", "127.0.0.1:8787"),
        ] {
            assert!(
                is_local(scheme, url_host, host),
                "{scheme} {url_host} {host}"
            );
        }
        for made_up in ["198.51.100.1", "198.51.100.2", "2001:db8:ffff::1", ""] {
            assert_eq!(client_of(Some(made_up), true), LOCAL_CLIENT);
        }
        assert_eq!(client_of(None, true), LOCAL_CLIENT);
        assert_eq!(
            client_of(None, false),
            LOCAL_CLIENT,
            "no header deployed: one bucket"
        );
    }

    #[test]
    fn the_network_of_a_client_is_its_slash_48_and_ipv4_has_none() {
        assert_eq!(
            network_key(&client_key("2001:db8:1:4200::1")).as_deref(),
            Some("2001:db8:1::/48")
        );
        assert_eq!(
            network_key(&client_key("2001:db8:1:42ff:1:2:3:4")),
            network_key(&client_key("2001:DB8:1:4201::"))
        );
        assert_eq!(network_key("203.0.113.9"), None);
        assert_eq!(network_key(LOCAL_CLIENT), None);
    }

    #[test]
    fn ipv6_clients_count_by_their_slash_64() {
        assert_eq!(client_key("203.0.113.9"), "203.0.113.9");
        assert_eq!(client_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(client_key("2001:DB8:1:2:bbbb:1:2:3"), "2001:db8:1:2::/64");
        assert_eq!(client_key("[2001:db8::5]"), "2001:db8:0:0::/64");
        assert_eq!(client_key("::1"), "0:0:0:0::/64");
    }
}
