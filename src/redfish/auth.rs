//! Accounts, roles, sessions and lockout of the Redfish service.
//!
//! Accounts come from the bundle (`spec.redfish.accounts`): a user name,
//! one of Redfish's predefined roles, and an Argon2 hash of the password
//! in PHC format (`onprem hash-password` makes one). The password never
//! travels or rests in clear.
//!
//! - **Sessions**: `POST /redfish/v1/SessionService/Sessions` with the
//!   user name and password returns a random token (`X-Auth-Token`); the
//!   service keeps only its SHA-256. A session ends on `DELETE`, after
//!   `sessionTimeout` without a request, or when its account is removed,
//!   disabled or given another role by a new bundle.
//! - **Basic**: `Authorization: Basic …` on each request. A verified
//!   pair is remembered for [`BASIC_CACHE`] (keyed by a salted hash, never
//!   the password) so that a client polling with Basic does not pay an
//!   Argon2 verification per request.
//! - **Lockout**: `lockoutThreshold` failures in a row lock the account
//!   for `lockoutDuration` (logins then fail without checking the
//!   password); a success resets the count, and so do
//!   `lockoutDuration` without a failure. An Administrator may unlock
//!   sooner with `PATCH {"Locked": false}` on the account. Unknown user
//!   names cost the same Argon2 verification as known ones.
//! - **Bounds**: each Argon2 verification takes 19 MiB, so at most
//!   [`HASH_PERMITS`] run at once, on blocking threads, and at most
//!   [`HASH_QUEUE`] more logins wait for one ([`Hashing`]); beyond, a
//!   login is answered 503 with `Retry-After` before any password is
//!   looked at. At most [`MAX_SESSIONS`] sessions are open, at most
//!   [`MAX_SESSIONS_PER_ACCOUNT`] of one account, and the last
//!   [`ADMIN_RESERVED_SESSIONS`] only for Administrator logins, so that no
//!   account, a ReadOnly one least, can lock the administrators out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

use crate::bundle::schema::{Redfish, RedfishAccount};

/// Most sessions open at once.
pub const MAX_SESSIONS: usize = 64;
/// Most sessions one account may hold at once.
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 16;
/// Session slots only Administrator logins may take: the other roles
/// hold at most `MAX_SESSIONS - ADMIN_RESERVED_SESSIONS` between them.
pub const ADMIN_RESERVED_SESSIONS: usize = 8;
/// Argon2 verifications run at once (19 MiB each).
pub const HASH_PERMITS: usize = 2;
/// Logins that may wait for a verification; beyond, 503.
pub const HASH_QUEUE: usize = 16;
/// The `Retry-After` of that 503, seconds.
pub const HASH_RETRY_AFTER_SECS: u64 = 1;
/// How long a verified Basic pair is remembered.
pub const BASIC_CACHE: Duration = Duration::from_secs(60);
/// Shortest and longest session timeouts a bundle may set, seconds.
pub const SESSION_TIMEOUT_RANGE: (u64, u64) = (30, 86_400);

/// A Redfish privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Read the service.
    Login,
    /// Change the manager and its services, end others' sessions.
    ConfigureManager,
    /// Manage accounts.
    ConfigureUsers,
    /// Change one's own account, end one's own session.
    ConfigureSelf,
    /// Act on systems and chassis (reset).
    ConfigureComponents,
}

impl Privilege {
    /// The name Redfish uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::Login => "Login",
            Privilege::ConfigureManager => "ConfigureManager",
            Privilege::ConfigureUsers => "ConfigureUsers",
            Privilege::ConfigureSelf => "ConfigureSelf",
            Privilege::ConfigureComponents => "ConfigureComponents",
        }
    }
}

/// Redfish's predefined roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Every privilege.
    Administrator,
    /// Login, ConfigureSelf, ConfigureComponents.
    Operator,
    /// Login, ConfigureSelf.
    ReadOnly,
}

/// Every role, in the order they are listed.
pub const ROLES: [Role; 3] = [Role::Administrator, Role::Operator, Role::ReadOnly];

impl Role {
    /// Parses a role name as the bundle writes it.
    pub fn parse(s: &str) -> Option<Role> {
        ROLES.into_iter().find(|r| r.as_str() == s)
    }

    /// The role id.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "Administrator",
            Role::Operator => "Operator",
            Role::ReadOnly => "ReadOnly",
        }
    }

    /// Its privileges.
    pub fn privileges(self) -> &'static [Privilege] {
        use Privilege::*;
        match self {
            Role::Administrator => &[
                Login,
                ConfigureManager,
                ConfigureUsers,
                ConfigureSelf,
                ConfigureComponents,
            ],
            Role::Operator => &[Login, ConfigureSelf, ConfigureComponents],
            Role::ReadOnly => &[Login, ConfigureSelf],
        }
    }

    /// Whether it has `p`.
    pub fn has(self, p: Privilege) -> bool {
        self.privileges().contains(&p)
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The account.
    pub user: String,
    /// Its role.
    pub role: Role,
    /// The session id, when the request came with a session token.
    pub session: Option<String>,
}

/// An open session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Id (the last segment of its URI).
    pub id: String,
    /// SHA-256 of the token.
    token_hash: [u8; 32],
    /// The account.
    pub user: String,
    /// Its role when the session opened.
    pub role: Role,
    /// When it opened.
    pub created: SystemTime,
    /// The client's address.
    pub origin: String,
    last_used: Instant,
}

#[derive(Debug, Default, Clone)]
struct Failures {
    count: u32,
    last: Option<Instant>,
    locked_until: Option<Instant>,
}

/// Why a login failed (the client is told only "invalid credentials").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// No such account.
    UnknownUser,
    /// The password does not match.
    BadPassword,
    /// The account is disabled.
    Disabled,
    /// The account is locked after repeated failures.
    Locked,
    /// This failure locked the account.
    NowLocked,
    /// Too many logins are being verified already; the password was not
    /// looked at (the client may retry).
    Busy,
}

impl LoginFailure {
    /// For the log.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::UnknownUser => "unknown user",
            LoginFailure::BadPassword => "wrong password",
            LoginFailure::Disabled => "account disabled",
            LoginFailure::Locked => "account locked",
            LoginFailure::NowLocked => "wrong password; account now locked",
            LoginFailure::Busy => "too many logins at once",
        }
    }
}

/// A hash of the right shape for unknown users, so that they cost the
/// same verification as known ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$b25wcmVtLWR1bW15LXNhbHQ$Hjsq3uDlSIA0Q4UJDh6iNCvOXBumYwnB3Md6DwmUOPk";

/// Hashes `password` with Argon2id (19 MiB, 2 passes, 1 lane: the OWASP
/// minimum) and a random salt, in PHC format.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks that `hash` is an Argon2 PHC string this service can verify.
pub fn check_hash(hash: &str) -> Result<(), String> {
    let h = PasswordHash::new(hash).map_err(|e| format!("not a PHC hash string: {e}"))?;
    if !matches!(h.algorithm.as_str(), "argon2id" | "argon2i" | "argon2d") {
        return Err(format!(
            "algorithm {:?} is not argon2id (make one with `onprem hash-password`)",
            h.algorithm.as_str()
        ));
    }
    if h.hash.is_none() || h.salt.is_none() {
        return Err("no salt or hash in it".into());
    }
    argon2::Params::try_from(&h).map_err(|e| format!("Argon2 parameters: {e}"))?;
    Ok(())
}

/// Whether `password` matches `hash` (a malformed hash matches nothing).
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(h) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // Without randomness the ids would be guessable; the OS never fails
    // this on Linux after boot, and an all-zero id only collides.
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Why a session was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLimit {
    /// [`MAX_SESSIONS`] are open.
    Total,
    /// The account holds [`MAX_SESSIONS_PER_ACCOUNT`].
    Account,
    /// Only the slots kept for Administrator logins
    /// ([`ADMIN_RESERVED_SESSIONS`]) are left.
    Reserved,
}

impl SessionLimit {
    /// What the client can do about it.
    pub fn resolution(self) -> String {
        match self {
            SessionLimit::Total => format!(
                "At most {MAX_SESSIONS} sessions: log out of (DELETE) unused ones, or wait for them to time out."
            ),
            SessionLimit::Account => format!(
                "At most {MAX_SESSIONS_PER_ACCOUNT} sessions per account: log out of (DELETE) this account's unused ones, or wait for them to time out."
            ),
            SessionLimit::Reserved => format!(
                "The last {ADMIN_RESERVED_SESSIONS} of {MAX_SESSIONS} sessions are kept for Administrator logins: log out of (DELETE) unused sessions, or wait for them to time out."
            ),
        }
    }
}

/// The bound on Argon2 work: [`HASH_PERMITS`] verifications at once and
/// [`HASH_QUEUE`] logins waiting ([module docs](self)).
pub struct Hashing {
    permits: Arc<tokio::sync::Semaphore>,
    load: Arc<AtomicUsize>,
    most: usize,
}

/// A turn to verify a password: hold it while Argon2 runs (move it into
/// the blocking task, so that a client who goes away does not free it
/// early).
pub struct HashTurn {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _load: Load,
}

struct Load(Arc<AtomicUsize>);

impl Drop for Load {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hashing {
    /// `permits` verifications at once, `queue` more waiting.
    pub fn new(permits: usize, queue: usize) -> Hashing {
        Hashing {
            permits: Arc::new(tokio::sync::Semaphore::new(permits.max(1))),
            load: Arc::new(AtomicUsize::new(0)),
            most: permits.max(1) + queue,
        }
    }

    /// Waits for a turn; `None` at once when the queue is full.
    pub async fn turn(&self) -> Option<HashTurn> {
        if self.load.fetch_add(1, Ordering::SeqCst) >= self.most {
            self.load.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let load = Load(Arc::clone(&self.load));
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok()?;
        Some(HashTurn {
            _permit: permit,
            _load: load,
        })
    }

    /// Logins verifying or waiting now.
    pub fn load(&self) -> usize {
        self.load.load(Ordering::SeqCst)
    }
}

/// The service's accounts, sessions and lockouts.
pub struct Auth {
    inner: Mutex<State>,
    /// Salt of the Basic cache keys (per process).
    salt: [u8; 32],
    /// The bound on Argon2 work.
    pub hashing: Hashing,
}

struct State {
    accounts: Vec<RedfishAccount>,
    timeout: Duration,
    threshold: u32,
    lock_for: Duration,
    sessions: Vec<Session>,
    failures: HashMap<String, Failures>,
    basic: HashMap<[u8; 32], (String, Instant)>,
}

/// Account state shown by `ManagerAccount`.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountView {
    /// As the bundle says.
    pub account: RedfishAccount,
    /// Whether it is locked now.
    pub locked: bool,
}

impl Auth {
    /// From the bundle's section.
    pub fn new(cfg: &Redfish) -> Auth {
        let mut salt = [0u8; 32];
        let _ = getrandom::fill(&mut salt);
        let a = Auth {
            inner: Mutex::new(State {
                accounts: Vec::new(),
                timeout: Duration::ZERO,
                threshold: 0,
                lock_for: Duration::ZERO,
                sessions: Vec::new(),
                failures: HashMap::new(),
                basic: HashMap::new(),
            }),
            salt,
            hashing: Hashing::new(HASH_PERMITS, HASH_QUEUE),
        };
        a.configure(cfg);
        a
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a new bundle's accounts and policies. Sessions of accounts
    /// that are gone, disabled or have another role end; remembered Basic
    /// pairs are forgotten (a password may have changed).
    pub fn configure(&self, cfg: &Redfish) {
        let mut st = self.lock();
        st.timeout = cfg.session_timeout.0;
        st.threshold = cfg.lockout_threshold;
        st.lock_for = cfg.lockout_duration.0;
        st.accounts = cfg.accounts.clone();
        st.basic.clear();
        let accounts = st.accounts.clone();
        st.sessions.retain(|s| {
            accounts
                .iter()
                .any(|a| a.user_name == s.user && a.enabled && Role::parse(&a.role) == Some(s.role))
        });
        st.failures
            .retain(|user, _| accounts.iter().any(|a| &a.user_name == user));
    }

    /// The session timeout.
    pub fn timeout(&self) -> Duration {
        self.lock().timeout
    }

    /// Accounts as the service shows them.
    pub fn accounts(&self) -> Vec<AccountView> {
        let st = self.lock();
        let now = Instant::now();
        st.accounts
            .iter()
            .map(|a| AccountView {
                account: a.clone(),
                locked: st
                    .failures
                    .get(&a.user_name)
                    .and_then(|f| f.locked_until)
                    .is_some_and(|t| t > now),
            })
            .collect()
    }

    /// Unlocks an account (`PATCH {"Locked": false}`). False when there
    /// is no such account.
    pub fn unlock(&self, user: &str) -> bool {
        let mut st = self.lock();
        if !st.accounts.iter().any(|a| a.user_name == user) {
            return false;
        }
        st.failures.remove(user);
        true
    }

    /// Checks a user name and password (Argon2, on the calling thread:
    /// call from a blocking context, holding a [`Hashing`] turn). Counts
    /// failures and locks.
    pub fn login(&self, user: &str, password: &str) -> Result<Role, LoginFailure> {
        let now = Instant::now();
        let (account, threshold, lock_for) = {
            let mut st = self.lock();
            let lock_for = st.lock_for;
            let threshold = st.threshold;
            let account = st.accounts.iter().find(|a| a.user_name == user).cloned();
            if account.is_some() {
                let f = st.failures.entry(user.to_owned()).or_default();
                if f.locked_until.is_some_and(|t| t > now) {
                    return Err(LoginFailure::Locked);
                }
                if f.last
                    .is_some_and(|t| now.saturating_duration_since(t) >= lock_for)
                    || f.locked_until.is_some()
                {
                    *f = Failures::default();
                }
            }
            (account, threshold, lock_for)
        };
        let Some(account) = account else {
            let _ = verify_password(password, DUMMY_HASH);
            return Err(LoginFailure::UnknownUser);
        };
        let ok = verify_password(password, &account.password_hash);
        let mut st = self.lock();
        let f = st.failures.entry(user.to_owned()).or_default();
        if ok {
            *f = Failures::default();
            if !account.enabled {
                return Err(LoginFailure::Disabled);
            }
            return Role::parse(&account.role).ok_or(LoginFailure::Disabled);
        }
        f.count += 1;
        f.last = Some(now);
        if threshold > 0 && f.count >= threshold {
            f.locked_until = Some(now + lock_for);
            return Err(LoginFailure::NowLocked);
        }
        Err(LoginFailure::BadPassword)
    }

    /// A Basic pair remembered as verified, if any.
    pub fn basic_cached(&self, user: &str, password: &str) -> Option<Principal> {
        let key = sha256(&[&self.salt, user.as_bytes(), password.as_bytes()]);
        let mut st = self.lock();
        let (u, at) = st.basic.get(&key).cloned()?;
        if at.elapsed() >= BASIC_CACHE {
            st.basic.remove(&key);
            return None;
        }
        let a = st.accounts.iter().find(|a| a.user_name == u && a.enabled)?;
        let role = Role::parse(&a.role)?;
        let locked = st
            .failures
            .get(&u)
            .and_then(|f| f.locked_until)
            .is_some_and(|t| t > Instant::now());
        (!locked).then_some(Principal {
            user: u,
            role,
            session: None,
        })
    }

    /// Remembers a verified Basic pair.
    pub fn basic_remember(&self, user: &str, password: &str) {
        let key = sha256(&[&self.salt, user.as_bytes(), password.as_bytes()]);
        let mut st = self.lock();
        let now = Instant::now();
        st.basic
            .retain(|_, (_, at)| now.duration_since(*at) < BASIC_CACHE);
        if st.basic.len() < 1024 {
            st.basic.insert(key, (user.to_owned(), now));
        }
    }

    /// Opens a session for a verified user. Returns the session and its
    /// token, or which limit refused it: [`MAX_SESSIONS`] in all,
    /// [`MAX_SESSIONS_PER_ACCOUNT`] for the account, and the last
    /// [`ADMIN_RESERVED_SESSIONS`] only for Administrators.
    pub fn open_session(
        &self,
        user: &str,
        role: Role,
        origin: &str,
    ) -> Result<(Session, String), SessionLimit> {
        let mut st = self.lock();
        let now = Instant::now();
        let timeout = st.timeout;
        st.sessions
            .retain(|s| now.saturating_duration_since(s.last_used) < timeout);
        let open = st.sessions.len();
        if open >= MAX_SESSIONS {
            return Err(SessionLimit::Total);
        }
        if st.sessions.iter().filter(|s| s.user == user).count() >= MAX_SESSIONS_PER_ACCOUNT {
            return Err(SessionLimit::Account);
        }
        if role != Role::Administrator && open >= MAX_SESSIONS - ADMIN_RESERVED_SESSIONS {
            return Err(SessionLimit::Reserved);
        }
        let token = random_hex(32);
        let s = Session {
            id: random_hex(12),
            token_hash: sha256(&[token.as_bytes()]),
            user: user.to_owned(),
            role,
            created: SystemTime::now(),
            origin: origin.to_owned(),
            last_used: now,
        };
        st.sessions.push(s.clone());
        Ok((s, token))
    }

    /// The session a token belongs to (and marks it used), unless it has
    /// timed out.
    pub fn by_token(&self, token: &str) -> Option<Principal> {
        let h = sha256(&[token.as_bytes()]);
        let mut st = self.lock();
        let now = Instant::now();
        let timeout = st.timeout;
        st.sessions
            .retain(|s| now.saturating_duration_since(s.last_used) < timeout);
        let s = st.sessions.iter_mut().find(|s| s.token_hash == h)?;
        s.last_used = now;
        Some(Principal {
            user: s.user.clone(),
            role: s.role,
            session: Some(s.id.clone()),
        })
    }

    /// Open sessions.
    pub fn sessions(&self) -> Vec<Session> {
        let mut st = self.lock();
        let now = Instant::now();
        let timeout = st.timeout;
        st.sessions
            .retain(|s| now.saturating_duration_since(s.last_used) < timeout);
        st.sessions.clone()
    }

    /// Ends a session; false when there is none with that id.
    pub fn close(&self, id: &str) -> bool {
        let mut st = self.lock();
        let before = st.sessions.len();
        st.sessions.retain(|s| s.id != id);
        st.sessions.len() != before
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::bundle::duration::Dur;

    fn cfg(hash: &str, threshold: u32) -> Redfish {
        Redfish {
            accounts: vec![
                RedfishAccount {
                    user_name: "admin".into(),
                    role: "Administrator".into(),
                    password_hash: hash.into(),
                    enabled: true,
                },
                RedfishAccount {
                    user_name: "viewer".into(),
                    role: "ReadOnly".into(),
                    password_hash: hash.into(),
                    enabled: false,
                },
            ],
            lockout_threshold: threshold,
            lockout_duration: Dur::secs(300),
            ..Redfish::default()
        }
    }

    #[test]
    fn hashes_verify_and_check() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        check_hash(&h).unwrap();
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret!", &h));
        assert!(check_hash("plain").is_err());
        assert!(check_hash("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
        check_hash(DUMMY_HASH).unwrap();
    }

    #[test]
    fn roles_have_the_redfish_privileges() {
        assert!(Role::Administrator.has(Privilege::ConfigureUsers));
        assert!(Role::Operator.has(Privilege::ConfigureComponents));
        assert!(!Role::Operator.has(Privilege::ConfigureManager));
        assert!(!Role::ReadOnly.has(Privilege::ConfigureComponents));
        assert!(Role::ReadOnly.has(Privilege::Login));
        assert_eq!(Role::parse("Operator"), Some(Role::Operator));
        assert_eq!(Role::parse("operator"), None);
    }

    #[test]
    fn lockout_after_threshold_and_unlock() {
        let h = hash_password("pw").unwrap();
        let a = Auth::new(&cfg(&h, 3));
        assert_eq!(a.login("admin", "x"), Err(LoginFailure::BadPassword));
        assert_eq!(a.login("admin", "x"), Err(LoginFailure::BadPassword));
        // A success in between resets the count.
        assert_eq!(a.login("admin", "pw"), Ok(Role::Administrator));
        assert_eq!(a.login("admin", "x"), Err(LoginFailure::BadPassword));
        assert_eq!(a.login("admin", "x"), Err(LoginFailure::BadPassword));
        assert_eq!(a.login("admin", "x"), Err(LoginFailure::NowLocked));
        // Locked: even the right password fails.
        assert_eq!(a.login("admin", "pw"), Err(LoginFailure::Locked));
        assert!(a.accounts()[0].locked);
        assert!(a.unlock("admin"));
        assert!(!a.unlock("nobody"));
        assert_eq!(a.login("admin", "pw"), Ok(Role::Administrator));
        assert_eq!(a.login("nobody", "pw"), Err(LoginFailure::UnknownUser));
        assert_eq!(a.login("viewer", "pw"), Err(LoginFailure::Disabled));
    }

    #[test]
    fn sessions_open_close_and_end_with_their_account() {
        let h = hash_password("pw").unwrap();
        let a = Auth::new(&cfg(&h, 0));
        let (s, token) = a
            .open_session("admin", Role::Administrator, "127.0.0.1")
            .unwrap();
        let p = a.by_token(&token).unwrap();
        assert_eq!(p.user, "admin");
        assert_eq!(p.session.as_deref(), Some(s.id.as_str()));
        assert!(a.by_token("nope").is_none());
        // A new bundle that changes the role ends the session.
        let mut c = cfg(&h, 0);
        c.accounts[0].role = "Operator".into();
        a.configure(&c);
        assert!(a.by_token(&token).is_none());
        let (s, token) = a
            .open_session("admin", Role::Operator, "127.0.0.1")
            .unwrap();
        assert!(a.close(&s.id));
        assert!(!a.close(&s.id));
        assert!(a.by_token(&token).is_none());
    }

    #[test]
    fn sessions_time_out() {
        let h = hash_password("pw").unwrap();
        let mut c = cfg(&h, 0);
        c.session_timeout = Dur::millis(30);
        let a = Auth::new(&c);
        let (_, token) = a.open_session("admin", Role::Administrator, "x").unwrap();
        assert!(a.by_token(&token).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(a.by_token(&token).is_none());
        assert!(a.sessions().is_empty());
    }

    #[test]
    fn session_limits_per_account_in_all_and_for_administrators() {
        let h = hash_password("pw").unwrap();
        let a = Auth::new(&cfg(&h, 0));
        // One account: MAX_SESSIONS_PER_ACCOUNT.
        for _ in 0..MAX_SESSIONS_PER_ACCOUNT {
            a.open_session("admin", Role::Administrator, "x").unwrap();
        }
        assert_eq!(
            a.open_session("admin", Role::Administrator, "x").err(),
            Some(SessionLimit::Account)
        );
        // Other roles stop short of the administrators' reserve...
        let mut n = MAX_SESSIONS_PER_ACCOUNT;
        let mut user = 0;
        while n < MAX_SESSIONS - ADMIN_RESERVED_SESSIONS {
            let name = format!("viewer{}", user / MAX_SESSIONS_PER_ACCOUNT);
            a.open_session(&name, Role::ReadOnly, "x").unwrap();
            user += 1;
            n += 1;
        }
        assert_eq!(
            a.open_session("someone", Role::ReadOnly, "x").err(),
            Some(SessionLimit::Reserved)
        );
        assert_eq!(
            a.open_session("someone", Role::Operator, "x").err(),
            Some(SessionLimit::Reserved)
        );
        // ...which administrators may take, up to MAX_SESSIONS.
        for i in 0..ADMIN_RESERVED_SESSIONS {
            a.open_session(&format!("root{}", i % 2), Role::Administrator, "x")
                .unwrap();
        }
        assert_eq!(
            a.open_session("root9", Role::Administrator, "x").err(),
            Some(SessionLimit::Total)
        );
        assert_eq!(a.sessions().len(), MAX_SESSIONS);
    }

    #[tokio::test]
    async fn hashing_turns_are_bounded_and_queued() {
        let h = Hashing::new(2, 3);
        let t1 = h.turn().await.unwrap();
        let t2 = h.turn().await.unwrap();
        // Three may wait; the sixth is refused at once.
        let waiting: Vec<_> = (0..3).map(|_| h.turn()).collect();
        let mut waiting: Vec<_> = waiting.into_iter().map(Box::pin).collect();
        for w in &mut waiting {
            assert!(futures_poll_once(w.as_mut()).is_none());
        }
        assert_eq!(h.load(), 5);
        assert!(h.turn().await.is_none());
        assert_eq!(h.load(), 5);
        // A waiter that gives up leaves the queue.
        drop(waiting.pop());
        assert_eq!(h.load(), 4);
        drop(t1);
        let t3 = waiting.remove(0).await.unwrap();
        drop((t2, t3));
        drop(waiting);
        assert_eq!(h.load(), 0);
    }

    /// Polls a future once: `Some` when it is ready.
    fn futures_poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match f.poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn basic_cache_follows_the_bundle() {
        let h = hash_password("pw").unwrap();
        let a = Auth::new(&cfg(&h, 0));
        assert!(a.basic_cached("admin", "pw").is_none());
        a.basic_remember("admin", "pw");
        assert_eq!(
            a.basic_cached("admin", "pw").unwrap().role,
            Role::Administrator
        );
        assert!(a.basic_cached("admin", "other").is_none());
        a.configure(&cfg(&h, 0));
        assert!(a.basic_cached("admin", "pw").is_none());
    }
}
