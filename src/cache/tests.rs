//! The policy's tests, against a provider whose answers are scripted.

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;
use std::time::SystemTime;

use super::*;
use crate::clock::ManualClock;
use crate::error::Service;
use crate::secret::SecretString;
use crate::store::StoredTokens;
use crate::token::{Companions, EntryParts, Issued};

/// A service as these tests script it: the cache's view of one, typed.
trait Fake: Send + Sync + 'static {
    const SERVICE: Service;
    const SLIDING: Option<Duration> = None;
    const MAX_REFRESH_USES: Option<u32> = None;

    fn credentials(&self, _fingerprint: &mut dyn FnMut(&[u8])) {}

    fn login(&self, sent_wall: SystemTime) -> impl Future<Output = Result<Issued, Error>> + Send;

    fn refresh(
        &self,
        _refresh_token: &SecretString,
        _sent_wall: SystemTime,
    ) -> impl Future<Output = Result<Issued, Error>> + Send {
        async { Err(Error::configuration(Some(Self::SERVICE), "no refresh")) }
    }
}

/// A scripted provider as the cache holds one.
struct Erase<P>(Arc<P>);

impl<P: Fake> ErasedProvider for Erase<P> {
    fn credentials_dyn(&self, fingerprint: &mut dyn FnMut(&[u8])) {
        self.0.credentials(fingerprint);
    }

    fn login_boxed(&self, sent_wall: SystemTime) -> IssuedFuture<'_> {
        Box::pin(self.0.login(sent_wall))
    }

    fn refresh_boxed<'a>(
        &'a self,
        refresh_token: &'a SecretString,
        sent_wall: SystemTime,
    ) -> IssuedFuture<'a> {
        Box::pin(self.0.refresh(refresh_token, sent_wall))
    }
}

/// `P`'s constants, as a session gives them to its cache.
fn traits<P: Fake>() -> Constants {
    Constants {
        service: P::SERVICE,
        sliding: P::SLIDING,
        max_refresh_uses: P::MAX_REFRESH_USES,
        holds: Holds {
            challenge: Duration::from_secs(3 * 60),
            rate_limit: Duration::from_secs(60),
        },
    }
}

/// A provider whose answers are scripted: each login or refresh pops the next one.
#[derive(Default)]
struct Scripted {
    logins: Mutex<VecDeque<Result<Issued, Error>>>,
    refreshes: Mutex<VecDeque<Result<Issued, Error>>>,
    refresh_tokens_seen: Mutex<Vec<String>>,
    calls: AtomicUsize,
    /// The password its logins send.
    password: &'static str,
}

impl Fake for Scripted {
    const SERVICE: Service = Service::Accounts;
    const MAX_REFRESH_USES: Option<u32> = Some(2);

    fn credentials(&self, fingerprint: &mut dyn FnMut(&[u8])) {
        fingerprint(self.password.as_bytes());
    }

    async fn login(&self, _: SystemTime) -> Result<Issued, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.logins
            .lock()
            .unwrap()
            .pop_front()
            .expect("an unscripted login")
    }

    async fn refresh(&self, token: &SecretString, _: SystemTime) -> Result<Issued, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.refresh_tokens_seen
            .lock()
            .unwrap()
            .push(token.expose_secret().to_owned());
        self.refreshes
            .lock()
            .unwrap()
            .pop_front()
            .expect("an unscripted refresh")
    }
}

/// A cache and the provider it renews with, both kept, as a session keeps them.
struct Held<P> {
    cache: Owned,
    provider: Arc<P>,
}

impl<P: Fake> Held<P> {
    fn new(
        provider: P,
        clock: Arc<dyn crate::clock::Clock>,
        policy: RefreshPolicy,
        configure: impl FnOnce(Cache) -> Cache,
    ) -> Self {
        let provider = Arc::new(provider);
        let erased = Arc::new(Erase(provider.clone()));
        let cache = Cache::owned(erased, traits::<P>(), clock, policy, configure);
        Self { cache, provider }
    }
}

impl<P> std::ops::Deref for Held<P> {
    type Target = Cache;

    fn deref(&self) -> &Cache {
        &self.cache
    }
}

fn grant(access: &str, refresh: Option<&str>, secs: u64) -> Result<Issued, Error> {
    Ok(Issued {
        access: access.into(),
        refresh: refresh.map(SecretString::from),
        lifetime: Duration::from_secs(secs),
        max_lifetime: None,
        refresh_lifetime: Some(Duration::from_secs(3600)),
        extra: Companions::default(),
    })
}

fn cache(
    logins: Vec<Result<Issued, Error>>,
    refreshes: Vec<Result<Issued, Error>>,
) -> (Held<Scripted>, ManualClock) {
    stored_cache(logins, refreshes, None)
}

/// [`cache`], keeping its token set in `store` under `key` as well, when given.
fn stored_cache(
    logins: Vec<Result<Issued, Error>>,
    refreshes: Vec<Result<Issued, Error>>,
    store: Option<(Arc<dyn TokenStore>, StoreKey)>,
) -> (Held<Scripted>, ManualClock) {
    scripted(logins, refreshes, |cache| match store {
        Some((store, key)) => cache.with_store(store, key),
        None => cache,
    })
}

/// A cache over a [`Scripted`] provider that answers `logins` and `refreshes` in turn, on a
/// manual clock, without jitter, configured by `configure`.
fn scripted(
    logins: Vec<Result<Issued, Error>>,
    refreshes: Vec<Result<Issued, Error>>,
    configure: impl FnOnce(Cache) -> Cache,
) -> (Held<Scripted>, ManualClock) {
    let clock = ManualClock::new();
    let provider = Scripted {
        logins: Mutex::new(logins.into()),
        refreshes: Mutex::new(refreshes.into()),
        ..Default::default()
    };
    let policy = RefreshPolicy::new().with_jitter(false);
    let cache = Held::new(provider, Arc::new(clock.clone()), policy, configure);
    (cache, clock)
}

fn server_error() -> Result<Issued, Error> {
    Err(Error::new(ErrorKind::ServerError).with_status(500))
}

/// The kind of the error the next call fails with.
async fn failure(cache: &Cache) -> ErrorKind {
    cache.access_token().await.unwrap_err().kind()
}

async fn secret(cache: &Cache) -> String {
    cache
        .access_token()
        .await
        .unwrap()
        .secret()
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn each_thread_s_handle_follows_renewals_wipes_and_other_caches() {
    let (one, clock) = cache(
        vec![grant("a", Some("r"), 600), grant("c", None, 600)],
        vec![grant("b", None, 600)],
    );
    let (two, _) = cache(vec![grant("other", None, 600)], vec![]);
    assert_eq!(secret(&one).await, "a");
    assert_eq!(secret(&two).await, "other", "a second cache on this thread");
    assert_eq!(secret(&one).await, "a", "served from this thread's handle");
    clock.advance(Duration::from_secs(570));
    assert_eq!(secret(&one).await, "b", "the renewal replaced the handle");
    assert_eq!(secret(&one).await, "b");
    let elsewhere = std::thread::scope(|s| {
        s.spawn(|| {
            ready_now(one.access_token())
                .unwrap()
                .secret()
                .expose_secret()
                .to_owned()
        })
        .join()
        .unwrap()
    });
    assert_eq!(elsewhere, "b", "another thread sees the same token");
    one.wipe();
    assert!(one.fresh().is_none(), "a wipe reaches this thread's handle");
    assert_eq!(secret(&one).await, "c");
    assert_eq!(secret(&two).await, "other");
}

/// Polls a future that is ready at once (the fast path needs no runtime).
fn ready_now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
    {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the fast path never waits"),
    }
}

#[tokio::test]
async fn renews_by_refresh_token_and_keeps_it_when_none_is_returned() {
    let (cache, clock) = cache(
        vec![grant("a1", Some("r1"), 300)],
        vec![grant("a2", None, 300), grant("a3", None, 300)],
    );
    assert_eq!(secret(&cache).await, "a1");
    clock.advance(Duration::from_secs(271)); // past the 30 s margin of a 300 s token
    assert_eq!(secret(&cache).await, "a2");
    assert_eq!(
        cache.access_token().await.unwrap().origin(),
        TokenOrigin::Refresh
    );
    clock.advance(Duration::from_secs(271));
    assert_eq!(secret(&cache).await, "a3");
    assert_eq!(
        *cache.provider.refresh_tokens_seen.lock().unwrap(),
        ["r1", "r1"]
    );
}

#[tokio::test]
async fn a_refresh_token_is_not_used_past_its_limit() {
    let (cache, clock) = cache(
        vec![grant("a1", Some("r1"), 300), grant("a4", Some("r2"), 300)],
        vec![grant("a2", None, 300), grant("a3", None, 300)],
    );
    secret(&cache).await;
    for expected in ["a2", "a3", "a4"] {
        clock.advance(Duration::from_secs(280));
        assert_eq!(secret(&cache).await, expected);
    }
    assert_eq!(cache.counters.refreshes.load(Ordering::SeqCst), 2);
    assert_eq!(cache.counters.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_refresh_falls_back_to_login() {
    let refused = Err(Error::new(ErrorKind::RefreshLimitExceeded).with_status(429));
    let (cache, clock) = cache(
        vec![grant("a1", Some("r1"), 300), grant("a2", Some("r2"), 300)],
        vec![refused],
    );
    secret(&cache).await;
    clock.advance(Duration::from_secs(300));
    assert_eq!(secret(&cache).await, "a2");
    assert_eq!(
        cache.access_token().await.unwrap().origin(),
        TokenOrigin::Login
    );
}

#[tokio::test]
async fn an_early_renewal_failure_keeps_serving_the_valid_token_and_backs_off() {
    let (cache, clock) = cache(
        vec![grant("a1", Some("r1"), 300)],
        vec![server_error(), grant("a2", None, 300)],
    );
    secret(&cache).await;
    clock.advance(Duration::from_secs(280)); // due, 20 s left
    assert_eq!(
        secret(&cache).await,
        "a1",
        "a failed early refresh serves the valid token"
    );
    assert_eq!(secret(&cache).await, "a1", "and does not retry at once");
    assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 2);
    // The back-off is a quarter of the 20 s left: 5 s, to the instant.
    clock.advance(Duration::from_millis(4999));
    assert_eq!(secret(&cache).await, "a1", "still within the back-off");
    assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 2);
    clock.advance(Duration::from_millis(1));
    assert_eq!(secret(&cache).await, "a2");
    assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_expired_token_is_never_served_and_errors_are_not_cached() {
    let (cache, clock) = cache(
        vec![
            grant("a1", None, 300),
            server_error(),
            grant("a2", None, 300),
        ],
        vec![],
    );
    secret(&cache).await;
    clock.advance(Duration::from_secs(300));
    assert_eq!(failure(&cache).await, ErrorKind::ServerError);
    let calls = || cache.provider.calls.load(Ordering::SeqCst);
    let before = calls();
    let held = failure(&cache).await;
    assert_eq!(held, ErrorKind::ServerError, "within the login backoff");
    assert_eq!(calls(), before);
    clock.advance(Duration::from_secs(1));
    let next = secret(&cache).await;
    assert_eq!(next, "a2", "the next call after it tries again");
}

#[tokio::test]
async fn the_login_backoff_doubles_and_a_successful_login_resets_it() {
    let (cache, clock) = cache(
        vec![
            server_error(),
            server_error(),
            grant("a1", None, 300),
            server_error(),
            grant("a2", None, 300),
        ],
        vec![],
    );
    let calls = || cache.provider.calls.load(Ordering::SeqCst);
    cache.access_token().await.unwrap_err();
    clock.advance(Duration::from_secs(1));
    cache.access_token().await.unwrap_err();
    assert_eq!(calls(), 2);
    // The second backoff is 1 s to 2 s.
    clock.advance(Duration::from_millis(999));
    cache.access_token().await.unwrap_err();
    assert_eq!(calls(), 2, "within the doubled backoff");
    clock.advance(Duration::from_millis(1001));
    assert_eq!(secret(&cache).await, "a1");
    clock.advance(Duration::from_secs(300));
    cache.access_token().await.unwrap_err();
    assert_eq!(calls(), 4);
    // Back to at most 1 s after the success, not the 2 s to 4 s a third failure would give.
    clock.advance(Duration::from_secs(1));
    assert_eq!(secret(&cache).await, "a2");
    assert_eq!(calls(), 5);
}

#[tokio::test]
async fn a_login_challenge_is_answered_while_it_lasts_then_a_new_login_starts_another() {
    let challenge = Err(Error::new(ErrorKind::NewPasswordRequired).with_status(200));
    let (cache, clock) = cache(vec![challenge, grant("a1", None, 300)], vec![]);
    let calls = || cache.provider.calls.load(Ordering::SeqCst);
    for _ in 0..2 {
        assert_eq!(failure(&cache).await, ErrorKind::NewPasswordRequired);
        assert_eq!(calls(), 1);
    }
    // The default hold of a challenge is three minutes, to the instant.
    clock.advance(Duration::from_secs(180) - Duration::from_nanos(1));
    assert_eq!(failure(&cache).await, ErrorKind::NewPasswordRequired);
    assert_eq!(calls(), 1);
    clock.advance(Duration::from_nanos(1));
    assert_eq!(
        secret(&cache).await,
        "a1",
        "its session is spent: log in again"
    );
}

#[tokio::test]
async fn a_rate_limit_of_unknown_length_holds_logins_back_for_the_provider_s_wait() {
    let limited = Err(Error::new(ErrorKind::RateLimited { retry_after: None }).with_status(429));
    let (cache, clock) = cache(vec![limited, grant("a1", None, 300)], vec![]);
    cache.access_token().await.unwrap_err();
    clock.advance(Duration::from_secs(60) - Duration::from_secs(1));
    cache.access_token().await.unwrap_err();
    assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(secret(&cache).await, "a1");
}

#[tokio::test]
async fn invalidation_forces_renewal_but_keeps_the_refresh_token() {
    let (cache, _clock) = cache(
        vec![grant("a1", Some("r1"), 300)],
        vec![grant("a2", None, 300)],
    );
    secret(&cache).await;
    cache.invalidate(&"someone-else".into());
    assert_eq!(
        secret(&cache).await,
        "a1",
        "only the token that was refused is dropped"
    );
    cache.invalidate(&"a1".into());
    assert_eq!(secret(&cache).await, "a2");
    assert_eq!(*cache.provider.refresh_tokens_seen.lock().unwrap(), ["r1"]);
}

#[tokio::test]
async fn sliding_never_passes_the_cap() {
    let clock = ManualClock::new();
    let entry = Entry::new(
        Arc::new(clock.clone()),
        clock.now(),
        EntryParts {
            secret: "t".into(),
            refresh: None,
            extra: Companions::default(),
            origin: TokenOrigin::Login,
            expires_at: clock.now() + Duration::from_secs(300),
            expires_at_most: Some(clock.now() + Duration::from_secs(500)),
            lead: Duration::from_secs(30),
            sliding: Some(Duration::from_secs(300)),
            stepped_up: false,
        },
    );
    let start = clock.now();
    clock.advance(Duration::from_secs(100));
    entry.slide(clock.now());
    assert_eq!(entry.expires_at() - start, Duration::from_secs(400));
    clock.advance(Duration::from_secs(100));
    entry.slide(clock.now());
    assert_eq!(entry.expires_at() - start, Duration::from_secs(500));
    entry.slide(start); // an old request's success never moves it back
    assert_eq!(entry.expires_at() - start, Duration::from_secs(500));
}

/// A cache that renews in the background, as a session holds it.
fn background_cache(
    logins: Vec<Result<Issued, Error>>,
    refreshes: Vec<Result<Issued, Error>>,
) -> (Held<Scripted>, ManualClock) {
    scripted(logins, refreshes, Cache::with_background_refresh)
}

/// A background-renewing cache that logged in for `a` (600 s, refresh token `r`) and whose
/// refresh brings `b`, as the tests of the task's timer start.
async fn background_after_a_login() -> (Held<Scripted>, ManualClock) {
    let (cache, clock) = background_cache(
        vec![grant("a", Some("r"), 600)],
        vec![grant("b", Some("r2"), 600)],
    );
    assert_eq!(secret(&cache).await, "a");
    (cache, clock)
}

/// Lets the runtime's other tasks run until `done` holds (a deadlock guard, not a timer).
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(start_paused = true)]
async fn the_background_task_renews_at_the_margin_unasked_and_ends_with_the_cache() {
    let (cache, clock) = background_after_a_login().await;
    let running = cache.background.as_ref().unwrap().task_running();
    assert!(running(), "the first call started the task");

    // Due 60 s before expiry (10 % of 600 s): the task's timer fires then, with no caller.
    clock.advance(Duration::from_secs(541));
    tokio::time::advance(Duration::from_secs(541)).await;
    until("the task renewed", || {
        cache
            .current()
            .is_some_and(|e| e.secret.expose_secret() == "b")
    })
    .await;
    assert_eq!(*cache.provider.refresh_tokens_seen.lock().unwrap(), ["r"]);
    assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 2);

    // The task holds the cache only weakly: dropping the last owner ends it.
    let weak = Arc::downgrade(&cache.cache.0);
    drop(cache);
    assert!(weak.upgrade().is_none(), "the task kept the cache alive");
    until("the task ended", || !running()).await;
}

#[tokio::test(start_paused = true)]
async fn a_renewal_that_leaves_no_valid_token_is_not_repeated_by_the_task_alone() {
    // A lifetime of 0 s is expired at once: the task must not renew in a loop, and the next
    // caller renews itself, as without background renewal.
    let (cache, clock) = background_cache(
        vec![grant("a", Some("r"), 600)],
        vec![grant("b", Some("r2"), 0), grant("c", Some("r3"), 600)],
    );
    assert_eq!(secret(&cache).await, "a");
    clock.advance(Duration::from_secs(541));
    tokio::time::advance(Duration::from_secs(541)).await;
    until("the task renewed", || {
        cache.provider.calls.load(Ordering::SeqCst) == 2
    })
    .await;
    tokio::time::advance(Duration::from_secs(3600)).await;
    for _ in 0..1000 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        cache.provider.calls.load(Ordering::SeqCst),
        2,
        "the task renewed again with no caller asking"
    );
    assert_eq!(secret(&cache).await, "c", "the caller renewed itself");
    assert_eq!(
        *cache.provider.refresh_tokens_seen.lock().unwrap(),
        ["r", "r2"]
    );
}

#[tokio::test]
async fn a_caller_that_joins_after_a_flight_ended_takes_its_token_without_a_request() {
    // The interleaving a multi-thread runtime allows: a caller finds the token due, and the
    // flight in the air ends (leaving a fresh token) before the caller joins, so that the
    // caller starts a flight of its own. Calling `renewal()` directly is that caller's join.
    let (cache, clock) = cache(
        vec![grant("a", Some("r"), 600)],
        vec![grant("b", Some("r2"), 600)],
    );
    clock.advance(Duration::from_secs(100));
    assert_eq!(secret(&cache).await, "a");
    let token = cache.renewal().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "a");
    assert_eq!(
        cache.provider.calls.load(Ordering::SeqCst),
        1,
        "the new flight renewed the token the last one left"
    );
    assert_eq!(cache.counters.logins.load(Ordering::SeqCst), 1);
    assert_eq!(cache.counters.refreshes.load(Ordering::SeqCst), 0);
}

/// Two caches sharing one `MemoryStore` under one key, on one clock whose wall time is a
/// whole second (so that the store's milliseconds are exact), each with its own script.
#[allow(clippy::type_complexity)]
fn stored_pair(
    one: Vec<Result<Issued, Error>>,
    two_refreshes: Vec<Result<Issued, Error>>,
) -> (
    Held<Scripted>,
    Held<Scripted>,
    Arc<crate::store::MemoryStore>,
    ManualClock,
) {
    let clock =
        ManualClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let store = Arc::new(crate::store::MemoryStore::new());
    let key = || StoreKey::new(Service::Accounts, "https://accounts.test", "scripted");
    let make =
        |logins: Vec<Result<Issued, Error>>, refreshes: Vec<Result<Issued, Error>>, policy| {
            let provider = Scripted {
                logins: Mutex::new(logins.into()),
                refreshes: Mutex::new(refreshes.into()),
                ..Default::default()
            };
            Held::new(provider, Arc::new(clock.clone()), policy, |cache| {
                cache.with_store(store.clone(), key())
            })
        };
    let fixed = RefreshPolicy::new().with_jitter(false);
    let one = make(one, vec![], fixed);
    // A margin of its own, so that a renewal time taken from the store shows.
    let two = make(
        vec![],
        two_refreshes,
        fixed.with_margin(Duration::from_secs(10)),
    );
    (one, two, store, clock)
}

#[tokio::test]
async fn a_token_set_crosses_the_store_with_every_instant_and_count_intact() {
    let mut first = grant("a", Some("r"), 600).unwrap();
    first.max_lifetime = Some(Duration::from_secs(900));
    first.extra.id_token = Some("id".into());
    let (one, two, _store, clock) = stored_pair(vec![Ok(first)], vec![grant("b", None, 600)]);
    let t0 = clock.now();
    assert_eq!(secret(&one).await, "a");

    clock.advance(Duration::from_secs(100));
    assert_eq!(secret(&two).await, "a", "taken from the store, no request");
    assert_eq!(two.provider.calls.load(Ordering::SeqCst), 0);
    let adopted = two.current().unwrap();
    assert_eq!(adopted.origin, TokenOrigin::Store);
    assert_eq!(adopted.expires_at(), t0 + Duration::from_secs(600));
    assert_eq!(
        adopted.expires_at_most(),
        Some(t0 + Duration::from_secs(900))
    );
    let refresh = adopted.refresh.as_ref().unwrap();
    assert_eq!(refresh.expires_at, Some(t0 + Duration::from_secs(3600)));
    assert_eq!(
        adopted.lead(),
        Duration::from_secs(60),
        "the storing session's margin"
    );
    assert_eq!(refresh.token.expose_secret(), "r");
    assert_eq!(
        adopted.extra.id_token.as_ref().unwrap().expose_secret(),
        "id"
    );
    assert_eq!(refresh.uses, 0);

    // Due by the stored renewal time (540 s), not by this session's 10 s margin: the
    // renewal uses the stored refresh token, and keeps the id token.
    clock.advance(Duration::from_secs(440));
    assert_eq!(secret(&two).await, "b");
    assert_eq!(*two.provider.refresh_tokens_seen.lock().unwrap(), ["r"]);
    let renewed = two.current().unwrap();
    assert_eq!(
        renewed.refresh.as_ref().unwrap().uses,
        1,
        "the kept refresh token was used once"
    );
    assert_eq!(
        renewed.extra.id_token.as_ref().unwrap().expose_secret(),
        "id"
    );
    assert_eq!(one.provider.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn only_a_newer_token_set_is_taken_from_the_store() {
    let (one, _two, store, clock) = stored_pair(vec![grant("a", Some("r"), 600)], vec![]);
    let key = StoreKey::new(Service::Accounts, "https://accounts.test", "scripted");
    assert_eq!(secret(&one).await, "a");
    let wall = |secs: u64| crate::store::to_ms(clock.system_now() + Duration::from_secs(secs));
    let stored =
        |access: &str, expires_in: u64| StoredTokens::access_only(access, wall(expires_in));
    store.save(&key, &stored("older", 300)).await.unwrap();
    assert!(one.adopt_stored().await.is_none(), "an older set is left");
    store.save(&key, &stored("a", 700)).await.unwrap();
    assert!(
        one.adopt_stored().await.is_none(),
        "the same token is not taken again"
    );
    let kept = one.current().unwrap();
    assert_eq!(kept.secret.expose_secret(), "a");
    assert_eq!(kept.origin, TokenOrigin::Login);
    store.save(&key, &stored("newer", 700)).await.unwrap();
    let taken = one.adopt_stored().await.unwrap();
    assert_eq!(taken.secret().expose_secret(), "newer");
    assert_eq!(one.current().unwrap().origin, TokenOrigin::Store);
    assert_eq!(one.provider.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refused_credentials_are_not_resent_until_the_failure_is_cleared() {
    let refused = Err(Error::new(ErrorKind::InvalidCredentials).with_status(401));
    let (cache, clock) = cache(vec![refused, grant("a1", None, 300)], vec![]);
    for _ in 0..2 {
        assert_eq!(failure(&cache).await, ErrorKind::InvalidCredentials);
    }
    clock.advance(Duration::from_secs(24 * 60 * 60));
    let later = failure(&cache).await;
    assert_eq!(later, ErrorKind::InvalidCredentials, "a day later, still");
    assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 1);
    cache.clear_failure();
    assert_eq!(secret(&cache).await, "a1");
    assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_thread_s_handle_stops_serving_at_the_renewal_instant_exactly() {
    let (cache, clock) = cache(
        vec![grant("a", Some("r"), 600)],
        vec![grant("b", Some("r2"), 600)],
    );
    assert_eq!(secret(&cache).await, "a");
    // Renewal is due 60 s before expiry: at 540 s, to the nanosecond.
    clock.advance(Duration::from_secs(540) - Duration::from_nanos(1));
    assert_eq!(
        secret(&cache).await,
        "a",
        "served from this thread's handle"
    );
    clock.advance(Duration::from_nanos(1));
    assert_eq!(secret(&cache).await, "b");
    assert_eq!(*cache.provider.refresh_tokens_seen.lock().unwrap(), ["r"]);
}

/// A provider whose tokens slide (like weavr's): every accepted call moves expiry on.
struct Slides(Scripted);

impl Fake for Slides {
    const SERVICE: Service = Service::Weavr;
    const SLIDING: Option<Duration> = Some(Duration::from_secs(300));

    async fn login(&self, sent: SystemTime) -> Result<Issued, Error> {
        self.0.login(sent).await
    }
}

#[tokio::test]
async fn a_slid_token_is_served_past_the_handle_s_renewal_time_up_to_its_cap() {
    let clock = ManualClock::new();
    let mut first = grant("a", None, 300).unwrap();
    first.max_lifetime = Some(Duration::from_secs(400));
    let provider = Slides(Scripted {
        logins: Mutex::new(vec![Ok(first), grant("b", None, 300)].into()),
        ..Default::default()
    });
    let policy = RefreshPolicy::new().with_jitter(false);
    let cache = Held::new(provider, Arc::new(clock.clone()), policy, |cache| cache);
    let t0 = clock.now();
    let token = cache.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "a");
    // This thread's handle says fresh until 270 s (300 s less a 30 s margin); an accepted
    // call at 200 s slides expiry to 500 s, capped at 400 s.
    clock.advance(Duration::from_secs(200));
    token.entry().slide(clock.now());
    assert_eq!(token.entry().expires_at(), t0 + Duration::from_secs(400));
    clock.advance(Duration::from_secs(100));
    let calls = || cache.provider.0.calls.load(Ordering::SeqCst);
    assert_eq!(secret(&cache).await, "a", "the slid token, no login");
    assert_eq!(calls(), 1);
    clock.advance(Duration::from_secs(70));
    assert_eq!(secret(&cache).await, "b", "due 30 s before the cap");
    assert_eq!(calls(), 2);
}

/// A provider whose refreshes take `delay` on the test clock: the token they bring may be
/// due on arrival.
struct SlowRefresh {
    script: Scripted,
    clock: ManualClock,
    delay: Duration,
}

impl Fake for SlowRefresh {
    const SERVICE: Service = Service::Accounts;

    async fn login(&self, sent: SystemTime) -> Result<Issued, Error> {
        self.script.login(sent).await
    }

    async fn refresh(&self, token: &SecretString, sent: SystemTime) -> Result<Issued, Error> {
        self.clock.advance(self.delay);
        self.script.refresh(token, sent).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_renewal_that_arrives_due_is_not_repeated_by_the_task_alone() {
    let clock = ManualClock::new();
    let provider = SlowRefresh {
        script: Scripted {
            logins: Mutex::new(vec![grant("a", Some("r"), 600)].into()),
            refreshes: Mutex::new(
                vec![grant("b", Some("r2"), 100), grant("c", Some("r3"), 600)].into(),
            ),
            ..Default::default()
        },
        clock: clock.clone(),
        delay: Duration::from_secs(95),
    };
    let policy = RefreshPolicy::new().with_jitter(false);
    let shared: Arc<dyn crate::clock::Clock> = Arc::new(clock.clone());
    let cache = Held::new(provider, shared, policy, Cache::with_background_refresh);
    assert_eq!(secret(&cache).await, "a");
    let calls = || cache.provider.script.calls.load(Ordering::SeqCst);
    // Due at 540 s. The refresh sent at 541 s takes 95 s: "b" (100 s, due 10 s before its
    // expiry at 641 s) arrives at 636 s already due, but valid.
    clock.advance(Duration::from_secs(541));
    tokio::time::advance(Duration::from_secs(541)).await;
    until("the task renewed", || calls() == 2).await;
    let b = cache.current().unwrap();
    assert_eq!(b.secret.expose_secret(), "b");
    assert!(b.is_valid(clock.now()) && !b.is_fresh(clock.now()));
    for _ in 0..1000 {
        tokio::task::yield_now().await;
    }
    assert_eq!(calls(), 2, "the task renewed again with no caller asking");
    assert_eq!(
        *cache.provider.script.refresh_tokens_seen.lock().unwrap(),
        ["r"]
    );
    // A caller served the due token nudges the task, which renews then.
    assert_eq!(secret(&cache).await, "b");
    until("the nudged task renewed", || calls() == 3).await;
    assert_eq!(
        *cache.provider.script.refresh_tokens_seen.lock().unwrap(),
        ["r", "r2"]
    );
}

/// Lets the background task run until it waits (on its timer or for a nudge).
async fn let_the_task_settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_task_sleeps_through_a_fresh_token_and_renews_at_the_margin() {
    let (cache, clock) = background_after_a_login().await;
    // The task looks at the token while it is fresh: it sets its timer for the margin.
    let_the_task_settle().await;
    assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(541));
    tokio::time::advance(Duration::from_secs(541)).await;
    until("the task renewed at its timer", || {
        cache.provider.calls.load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!(*cache.provider.refresh_tokens_seen.lock().unwrap(), ["r"]);
}

#[tokio::test(start_paused = true)]
async fn a_token_that_expired_while_the_task_slept_is_left_to_the_next_caller() {
    let (cache, clock) = background_after_a_login().await;
    let_the_task_settle().await;
    // The timer fires after the token expired (the machine slept, say): no caller asked,
    // so nothing is sent.
    clock.advance(Duration::from_secs(700));
    tokio::time::advance(Duration::from_secs(700)).await;
    let_the_task_settle().await;
    assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 1);
    assert_eq!(secret(&cache).await, "b", "the caller renews");
    assert_eq!(*cache.provider.refresh_tokens_seen.lock().unwrap(), ["r"]);
}

#[tokio::test(start_paused = true)]
async fn a_session_waits_a_minute_for_another_holder_of_the_lease_then_renews_alone() {
    let (one, _two, store, clock) = stored_pair(vec![grant("a", Some("r"), 600)], vec![]);
    let key = StoreKey::new(Service::Accounts, "https://accounts.test", "scripted");
    // Another session holds the renewal lease and never stores a token set.
    let held = store.lease(&key).await.unwrap().expect("a free lease");
    let one = Arc::new(one);
    let waiting = tokio::spawn({
        let one = one.clone();
        async move { secret(&one).await }
    });
    let_the_task_settle().await;
    // The wait is measured on the session's clock: a minute exactly is not yet too long.
    clock.advance(Duration::from_secs(60));
    tokio::time::advance(Duration::from_secs(1)).await;
    let_the_task_settle().await;
    assert!(
        !waiting.is_finished(),
        "renewed alone after a minute exactly"
    );
    assert_eq!(one.provider.calls.load(Ordering::SeqCst), 0);
    clock.advance(Duration::from_nanos(1));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(waiting.await.unwrap(), "a");
    assert_eq!(one.provider.calls.load(Ordering::SeqCst), 1);
    drop(held);
}

#[tokio::test]
async fn a_thread_keeps_one_handle_per_cache_and_lets_a_replaced_token_go() {
    let (one, clock) = cache(
        vec![grant("a", Some("r"), 600)],
        vec![grant("b", Some("r2"), 600)],
    );
    let (two, _) = cache(vec![grant("other", None, 600)], vec![]);
    // A login's caller gets the token from the renewal; the next call is served from the
    // slot and keeps a handle on this thread.
    for _ in 0..2 {
        assert_eq!(secret(&one).await, "a");
        assert_eq!(secret(&two).await, "other");
    }
    // Each token is held by its cache's slot, this thread's handle for that cache, and here:
    // the second cache's handle did not take the first one's place.
    let a = {
        let a = one.current().unwrap();
        assert_eq!(Arc::strong_count(&a), 3);
        Arc::downgrade(&a)
    };
    assert_eq!(Arc::strong_count(&two.current().unwrap()), 3);
    // Once renewed and served again, the old token is held by nothing: its secret is gone.
    clock.advance(Duration::from_secs(541));
    assert_eq!(secret(&one).await, "b");
    assert_eq!(secret(&one).await, "b");
    assert!(a.upgrade().is_none(), "a handle kept the replaced token");
    assert_eq!(Arc::strong_count(&one.current().unwrap()), 3);
}

/// A `MemoryStore` that counts the leases given back to it: a store whose leases outlive
/// their holder (Redis) frees the next renewal only when told.
#[derive(Debug, Default)]
struct CountsReleases {
    inner: crate::store::MemoryStore,
    leases: AtomicUsize,
    released: AtomicUsize,
}

impl TokenStore for CountsReleases {
    fn lease<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> crate::store::StoreFuture<'a, Option<crate::store::Lease>> {
        self.leases.fetch_add(1, Ordering::SeqCst);
        self.inner.lease(key)
    }
    fn release<'a>(
        &'a self,
        key: &'a StoreKey,
        lease: &'a crate::store::Lease,
    ) -> crate::store::StoreFuture<'a, ()> {
        self.released.fetch_add(1, Ordering::SeqCst);
        self.inner.release(key, lease)
    }
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> crate::store::StoreFuture<'a, Option<StoredTokens>> {
        self.inner.load(key)
    }
    fn save<'a>(
        &'a self,
        key: &'a StoreKey,
        tokens: &'a StoredTokens,
    ) -> crate::store::StoreFuture<'a, ()> {
        self.inner.save(key, tokens)
    }
    fn remove<'a>(&'a self, key: &'a StoreKey) -> crate::store::StoreFuture<'a, ()> {
        self.inner.remove(key)
    }
}

#[tokio::test]
async fn a_renewal_under_the_lease_gives_it_back_to_the_store() {
    let store = Arc::new(CountsReleases::default());
    let key = StoreKey::new(Service::Accounts, "https://accounts.test", "scripted");
    let (cache, clock) = stored_cache(
        vec![grant("a", Some("r"), 600)],
        vec![grant("b", Some("r2"), 600)],
        Some((store.clone(), key.clone())),
    );
    assert_eq!(secret(&cache).await, "a");
    assert_eq!(store.released.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(541));
    assert_eq!(secret(&cache).await, "b");
    assert_eq!(store.released.load(Ordering::SeqCst), 2);
    assert!(
        store.lease(&key).await.unwrap().is_some(),
        "the lease is free"
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_waiting_for_the_lease_asks_the_store_less_and_less_often() {
    let store = Arc::new(CountsReleases::default());
    let key = StoreKey::new(Service::Accounts, "https://accounts.test", "scripted");
    let held = store
        .inner
        .lease(&key)
        .await
        .unwrap()
        .expect("a free lease");
    let (cache, _clock) = stored_cache(
        vec![grant("a", Some("r"), 600)],
        vec![],
        Some((store.clone(), key)),
    );
    let cache = Arc::new(cache);
    let waiting = tokio::spawn({
        let cache = cache.clone();
        async move { secret(&cache).await }
    });
    for _ in 0..1000 {
        tokio::time::advance(Duration::from_millis(1)).await;
        let_the_task_settle().await;
    }
    // 25, 50, 100, 200 and 400 ms apart: at 0, 25, 75, 175, 375 and 775 ms.
    assert_eq!(store.leases.load(Ordering::SeqCst), 6);
    assert!(!waiting.is_finished());
    assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 0);
    waiting.abort();
    drop(held);
}

/// A store that answers no operation, counting them: it fails each (as a Redis that does not
/// answer does, after its timeouts), or (`hangs`) never answers (a custom store waiting on a
/// lock or a network that is gone).
#[derive(Debug, Default)]
struct Down {
    calls: AtomicUsize,
    hangs: bool,
}

impl Down {
    fn hanging() -> Self {
        Self {
            hangs: true,
            ..Self::default()
        }
    }

    fn fail<'a, T: Send + 'a>(&'a self) -> crate::store::StoreFuture<'a, T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hangs {
            return Box::pin(std::future::pending());
        }
        Box::pin(async { Err(Error::configuration(None, "token store down")) })
    }
}

impl TokenStore for Down {
    fn lease<'a>(
        &'a self,
        _: &'a StoreKey,
    ) -> crate::store::StoreFuture<'a, Option<crate::store::Lease>> {
        self.fail()
    }
    fn load<'a>(&'a self, _: &'a StoreKey) -> crate::store::StoreFuture<'a, Option<StoredTokens>> {
        self.fail()
    }
    fn save<'a>(
        &'a self,
        _: &'a StoreKey,
        _: &'a StoredTokens,
    ) -> crate::store::StoreFuture<'a, ()> {
        self.fail()
    }
    fn remove<'a>(&'a self, _: &'a StoreKey) -> crate::store::StoreFuture<'a, ()> {
        self.fail()
    }
}

#[tokio::test]
async fn a_store_that_failed_is_left_alone_for_the_rest_of_the_renewal_and_the_hold() {
    let store = Arc::new(Down::default());
    let key = StoreKey::new(Service::S7risk, "https://s7risk.test", "scripted");
    let (cache, clock) = stored_cache(
        ["a", "b", "c"].map(|a| grant(a, None, 600)).into(),
        vec![],
        Some((store.clone(), key)),
    );
    assert_eq!(secret(&cache).await, "a");
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        1,
        "the load failed: no lease was asked for and nothing saved"
    );
    clock.advance(fleet::STORE_DOWN_HOLD - Duration::from_millis(1));
    let b = cache.force_refresh().await.unwrap();
    assert_eq!(b.secret().expose_secret(), "b");
    assert_eq!(store.calls.load(Ordering::SeqCst), 1, "within the hold");
    clock.advance(Duration::from_millis(1));
    let c = cache.force_refresh().await.unwrap();
    assert_eq!(c.secret().expose_secret(), "c");
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        2,
        "asked again after it"
    );
    // A logout still asks the store to forget the token set.
    cache.forget_stored().await;
    assert_eq!(store.calls.load(Ordering::SeqCst), 3);
}

/// Counts, in `dropped`, the login futures dropped before or after they finished.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A provider whose logins wait until `gate` opens.
struct Gated {
    gate: tokio::sync::watch::Receiver<bool>,
    started: AtomicUsize,
    dropped: Arc<AtomicUsize>,
}

impl Fake for Gated {
    const SERVICE: Service = Service::Fib;

    async fn login(&self, _: SystemTime) -> Result<Issued, Error> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let _dropped = Dropped(self.dropped.clone());
        let mut gate = self.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
        grant("gated", None, 600)
    }
}

/// Waits on a multi-thread runtime until `done` holds (a deadlock guard, not a timer).
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..12_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never happened: {what}");
}

/// Makes `call` on a task of its own, and cancels it once `session`'s provider has started
/// its `login`th login.
async fn cancel_in_login<F, Fut>(session: &Arc<Held<Gated>>, login: usize, call: F)
where
    F: FnOnce(Arc<Held<Gated>>) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>> + Send + 'static,
{
    let caller = tokio::spawn(call(session.clone()));
    let started = || session.provider.started.load(Ordering::SeqCst) == login;
    eventually(&format!("login {login} started"), started).await;
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_outlives_its_callers_but_not_its_session() {
    let (open, gate) = tokio::sync::watch::channel(false);
    let dropped = Arc::new(AtomicUsize::new(0));
    let provider = Gated {
        gate,
        started: AtomicUsize::new(0),
        dropped: dropped.clone(),
    };
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(ManualClock::new());
    let policy = RefreshPolicy::new().with_jitter(false);
    let session = Arc::new(Held::new(provider, clock, policy, |cache| cache));
    let cache = Arc::downgrade(&session.cache.0);
    let call = |session: Arc<Held<Gated>>| async move { session.access_token().await.map(drop) };
    cancel_in_login(&session, 1, call).await;
    tokio::task::yield_now().await;
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "the login went with its caller"
    );

    // Another caller joins the login still in the air.
    let again = tokio::spawn({
        let session = session.clone();
        async move { secret(&session).await }
    });
    open.send_replace(true);
    assert_eq!(again.await.unwrap(), "gated");
    assert_eq!(session.provider.started.load(Ordering::SeqCst), 1);

    // A login in the air when the session is dropped stops, and lets the cache go.
    open.send_replace(false);
    let force = |session: Arc<Held<Gated>>| async move { session.force_refresh().await.map(drop) };
    cancel_in_login(&session, 2, force).await;
    let before = dropped.load(Ordering::SeqCst);
    drop(session);
    eventually("the login stopped and the cache went", || {
        dropped.load(Ordering::SeqCst) == before + 1 && cache.upgrade().is_none()
    })
    .await;
}

/// What a serving thread is told to do.
enum Serve {
    /// Take a token from the cache (and drop it at once), then idle.
    Once,
    Stop,
}

/// Threads that serve a token from `cache` when told, then idle, keeping whatever the cache
/// left in their thread-locals; each answers the secret it was served.
fn serving_threads(
    cache: &Arc<Held<Scripted>>,
    count: usize,
) -> Vec<(
    std::sync::mpsc::Sender<Serve>,
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
)> {
    (0..count)
        .map(|_| {
            let (order, orders) = std::sync::mpsc::channel();
            let (answer, answers) = std::sync::mpsc::channel();
            // Weakly: an idle thread must not be what keeps the session alive.
            let cache = Arc::downgrade(cache);
            let thread = std::thread::spawn(move || {
                while let Ok(Serve::Once) = orders.recv() {
                    let cache = cache.upgrade().expect("the session is alive while asked");
                    // Twice: the second is served from this thread's handle.
                    let served: Vec<String> = (0..2)
                        .map(|_| {
                            let token = ready_now(cache.access_token()).unwrap();
                            token.secret().expose_secret().to_owned()
                        })
                        .collect();
                    // Nothing of the session's is held here once the test hears back.
                    drop(cache);
                    for secret in served {
                        let _ = answer.send(secret);
                    }
                }
            });
            (order, answers, thread)
        })
        .collect()
}

#[tokio::test]
async fn a_token_served_on_threads_now_idle_dies_with_a_logout_a_renewal_and_the_session() {
    let (cache, _clock) = cache(["a", "b", "c"].map(|a| grant(a, None, 600)).into(), vec![]);
    let cache = Arc::new(cache);
    assert_eq!(secret(&cache).await, "a");
    let threads = serving_threads(&cache, 3);
    let serve = |expected: &str| {
        for (order, answers, _) in &threads {
            order.send(Serve::Once).unwrap();
            for _ in 0..2 {
                assert_eq!(answers.recv().unwrap(), expected);
            }
        }
    };
    serve("a");
    assert_eq!(secret(&cache).await, "a", "and on this thread");
    let a = Arc::downgrade(&cache.current().unwrap());
    // A logout: no thread that served the token keeps it.
    cache.wipe();
    assert!(
        a.upgrade().is_none(),
        "an idle thread kept the token after the logout"
    );

    assert_eq!(secret(&cache).await, "b");
    serve("b");
    let b = Arc::downgrade(&cache.current().unwrap());
    // A renewal: the replaced token goes too.
    let c = cache.force_refresh().await.unwrap();
    assert_eq!(c.secret().expose_secret(), "c");
    drop(c);
    assert!(
        b.upgrade().is_none(),
        "an idle thread kept a replaced token"
    );
    serve("c");
    let c = Arc::downgrade(&cache.current().unwrap());
    drop(cache);
    assert!(
        c.upgrade().is_none(),
        "an idle thread kept the token of a dropped session"
    );
    for (order, _, thread) in threads {
        order.send(Serve::Stop).unwrap();
        thread.join().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_operation_that_never_ends_is_bounded_and_the_store_bypassed() {
    let store = Arc::new(Down::hanging());
    let key = StoreKey::new(Service::S7risk, "https://s7risk.test", "scripted");
    let (cache, _clock) = stored_cache(
        vec![grant("a", None, 600)],
        vec![],
        Some((store.clone(), key)),
    );
    let started = tokio::time::Instant::now();
    // The outer bound is a deadlock guard: without the store's bound the call never returns.
    let token = tokio::time::timeout(Duration::from_secs(3600), secret(&cache))
        .await
        .expect("the store's operation was bounded");
    assert_eq!(token, "a");
    assert_eq!(
        started.elapsed(),
        fleet::STORE_OPERATION_LIMIT,
        "one operation waited out, then none"
    );
    assert_eq!(store.calls.load(Ordering::SeqCst), 1);
    // A logout asks the store to forget the token set, bounded too.
    let started = tokio::time::Instant::now();
    cache.forget_stored().await;
    assert_eq!(started.elapsed(), fleet::STORE_OPERATION_LIMIT);
    assert_eq!(store.calls.load(Ordering::SeqCst), 2);
}

/// The stores a fleet test runs on: a `MemoryStore`, a `FileStore` in a fresh directory and,
/// when `TOKENSMITH_TEST_REDIS_PORT` names a Redis (`TOKENSMITH_REQUIRE_REDIS=1` makes its
/// absence a failure), a `RedisStore`. Each with a name, for the failures.
async fn every_store(test: &str) -> Vec<(&'static str, Arc<dyn TokenStore>)> {
    #[cfg_attr(not(any(feature = "file-store", feature = "redis")), allow(unused_mut))]
    let mut stores: Vec<(&'static str, Arc<dyn TokenStore>)> =
        vec![("memory", Arc::new(crate::store::MemoryStore::new()))];
    // The other stores are cargo features (`cargo test --all-features` has them).
    #[cfg(feature = "file-store")]
    {
        let dir = std::env::temp_dir().join(format!(
            "tokensmith-cache-unit-{}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        stores.push((
            "file",
            Arc::new(crate::store::FileStore::new(
                dir.join("tokens.json"),
                crate::store::SealingKey::from_bytes([7; 32]),
            )),
        ));
    }
    #[cfg(feature = "redis")]
    match std::env::var("TOKENSMITH_TEST_REDIS_PORT") {
        Ok(port) => {
            let url = format!("redis://127.0.0.1:{port}/13");
            let key = crate::store::SealingKey::from_bytes([7; 32]);
            let redis = crate::store::RedisStore::connect(&url, key).await.unwrap();
            stores.push(("redis", Arc::new(redis)));
        }
        Err(_) => {
            let required = std::env::var("TOKENSMITH_REQUIRE_REDIS").is_ok_and(|v| v == "1");
            assert!(!required, "TOKENSMITH_TEST_REDIS_PORT is required");
            eprintln!("no TOKENSMITH_TEST_REDIS_PORT: the Redis store is skipped");
        }
    }
    #[cfg(not(feature = "file-store"))]
    let _ = test;
    stores
}

/// A key of its own for each run (a Redis database outlives a test run).
fn fresh_key() -> StoreKey {
    StoreKey::new(
        Service::Accounts,
        "https://accounts.test",
        &format!("skew-{:016x}", fastrand::u64(..)),
    )
}

/// A writer and a reader of one store under one key, the writer's wall clock `skew` ahead of
/// the reader's (behind it when `ahead` is false); their monotonic clocks agree, as two
/// machines' real clocks do in how fast they run.
fn skewed_pair(
    store: &Arc<dyn TokenStore>,
    key: &StoreKey,
    ahead: bool,
) -> (Held<Scripted>, ManualClock, Held<Scripted>, ManualClock) {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let skew = Duration::from_secs(600);
    let writer_wall = if ahead { t0 + skew } else { t0 - skew };
    let (writer_clock, reader_clock) = (
        ManualClock::starting_at(writer_wall),
        ManualClock::starting_at(t0),
    );
    let policy = RefreshPolicy::new().with_jitter(false);
    let make = |logins: Vec<Result<Issued, Error>>, clock: &ManualClock| {
        let provider = Scripted {
            logins: Mutex::new(logins.into()),
            ..Default::default()
        };
        Held::new(provider, Arc::new(clock.clone()), policy, |cache| {
            cache.with_store(store.clone(), key.clone())
        })
    };
    let writer = make(vec![grant("a", None, 600)], &writer_clock);
    let reader = make(vec![grant("b", None, 600)], &reader_clock);
    (writer, writer_clock, reader, reader_clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_stored_on_a_clock_ten_minutes_off_is_served_its_own_lifetime_and_no_longer() {
    for (name, store) in every_store("skew").await {
        for ahead in [true, false] {
            let case = format!("{name}, writer {}", if ahead { "ahead" } else { "behind" });
            let key = fresh_key();
            let (writer, writer_clock, reader, reader_clock) = skewed_pair(&store, &key, ahead);
            assert_eq!(secret(&writer).await, "a", "{case}");
            let adopted_at = reader_clock.now();
            assert_eq!(secret(&reader).await, "a", "{case}: taken from the store");
            assert_eq!(reader.provider.calls.load(Ordering::SeqCst), 0, "{case}");
            // Its lifetime less the time since it was stored (the real time between the save
            // and the load, on the store's clock), whatever either wall clock says.
            let left = reader.current().unwrap().expires_at() - adopted_at;
            assert!(
                left <= Duration::from_secs(600) && left > Duration::from_secs(590),
                "{case}: {left:?} left"
            );
            // Its lifetime on, the reader renews for itself.
            writer_clock.advance(Duration::from_secs(600));
            reader_clock.advance(Duration::from_secs(600));
            assert_eq!(secret(&reader).await, "b", "{case}");
            assert_eq!(reader.provider.calls.load(Ordering::SeqCst), 1, "{case}");
            store.remove(&key).await.unwrap();
        }
    }
}

/// A session of the account under `key` in `store`, logging in with `password` and answering
/// its logins with `logins`, on `clock`.
fn account_session(
    store: &Arc<dyn TokenStore>,
    key: &StoreKey,
    clock: &ManualClock,
    password: &'static str,
    logins: Vec<Result<Issued, Error>>,
) -> Held<Scripted> {
    let provider = Scripted {
        logins: Mutex::new(logins.into()),
        password,
        ..Default::default()
    };
    let policy = RefreshPolicy::new().with_jitter(false);
    Held::new(provider, Arc::new(clock.clone()), policy, |cache| {
        cache.with_store(store.clone(), key.clone())
    })
}

fn refused() -> Result<Issued, Error> {
    Err(Error::new(ErrorKind::InvalidCredentials)
        .with_service(Service::Accounts)
        .with_status(401)
        .with_message("Incorrect username or password."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_holds_back_every_session_with_the_same_credentials_until_one_clears_it() {
    for (name, store) in every_store("refusal").await {
        let key = fresh_key();
        let clock = ManualClock::new();
        let session = |password, logins| account_session(&store, &key, &clock, password, logins);
        let a = session("pw-1", vec![refused()]);
        let b = session("pw-1", vec![grant("b", None, 600)]);
        let corrected = session("pw-2", vec![grant("c", None, 600)]);

        let error = a.access_token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidCredentials, "{name}");
        // Another session with the same credentials: the account's refusal, no login.
        let error = b.access_token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidCredentials, "{name}");
        assert_eq!(error.service(), Some(Service::Accounts), "{name}");
        assert_eq!(error.status(), Some(401), "{name}");
        assert_eq!(error.message(), Some("Incorrect username or password."));
        assert_eq!(b.provider.calls.load(Ordering::SeqCst), 0, "{name}");
        // A day later, still.
        clock.advance(Duration::from_secs(24 * 60 * 60));
        b.access_token().await.unwrap_err();
        assert_eq!(b.provider.calls.load(Ordering::SeqCst), 0, "{name}");
        // Corrected credentials are not held back.
        assert_eq!(secret(&corrected).await, "c", "{name}");
        // (Forgotten in the store, as a logout would, so that the next sessions log in.)
        store.remove(&key).await.unwrap();

        // One session clears it: for itself, and in the store for sessions to come.
        b.clear_failure();
        assert_eq!(secret(&b).await, "b", "{name}");
        assert_eq!(b.provider.calls.load(Ordering::SeqCst), 1, "{name}");
        assert!(
            store.load_refusal(&key).await.unwrap().is_none(),
            "{name}: cleared in the store"
        );
        store.remove(&key).await.unwrap();
        let next = session("pw-1", vec![grant("d", None, 600)]);
        assert_eq!(secret(&next).await, "d", "{name}");
        // The session that met it keeps it until its own clear_failure() (when it has to log
        // in: with the account's token in the store, it takes that).
        store.remove(&key).await.unwrap();
        a.access_token().await.unwrap_err();
        assert_eq!(a.provider.calls.load(Ordering::SeqCst), 1, "{name}");
        store.remove(&key).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_or_lock_window_holds_every_session_of_the_account_until_it_ends() {
    // The window is counted on the store's clock: the sessions' own here, which the test moves
    // (a Redis counts in real time, which this test does not wait out). A whole second: the
    // file store counts in milliseconds.
    let clock =
        ManualClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    #[cfg_attr(not(feature = "file-store"), allow(unused_mut))]
    let mut stores: Vec<(&str, Arc<dyn TokenStore>)> =
        vec![("memory", Arc::new(crate::store::MemoryStore::new()))];
    #[cfg(feature = "file-store")]
    {
        let dir = std::env::temp_dir().join(format!("tokensmith-window-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = crate::store::FileStore::new(
            dir.join("tokens.json"),
            crate::store::SealingKey::from_bytes([7; 32]),
        )
        .clock(clock.clone());
        stores.push(("file", Arc::new(file)));
    }
    let windows = [
        (
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(60)),
            },
            429,
        ),
        (
            ErrorKind::AccountLocked {
                retry_after: Some(Duration::from_secs(60)),
            },
            423,
        ),
    ];
    for ((name, store), (window, status)) in stores
        .iter()
        .flat_map(|store| windows.iter().map(move |window| (store, window)))
    {
        let key = fresh_key();
        let limited = Err(Error::new(*window).with_status(*status));
        let a = account_session(store, &key, &clock, "pw-1", vec![limited]);
        // Another password, on the same account: a window holds every login of the account.
        let b = account_session(store, &key, &clock, "pw-2", vec![grant("b", None, 600)]);
        a.access_token().await.unwrap_err();
        clock.advance(Duration::from_secs(20));
        let held = b.access_token().await.unwrap_err();
        let left = Some(Duration::from_secs(40));
        let expected = match window {
            ErrorKind::RateLimited { .. } => ErrorKind::RateLimited { retry_after: left },
            _ => ErrorKind::AccountLocked { retry_after: left },
        };
        assert_eq!(held.kind(), expected, "{name}: what is left of the window");
        assert_eq!(held.status(), Some(*status));
        clock.advance(Duration::from_secs(40) - Duration::from_millis(1));
        b.access_token().await.unwrap_err();
        assert_eq!(b.provider.calls.load(Ordering::SeqCst), 0, "{name}");
        clock.advance(Duration::from_millis(1));
        assert_eq!(secret(&b).await, "b", "{name}");
    }
}

#[tokio::test]
async fn a_token_is_exchanged_once_whoever_asks_after_the_exchange() {
    let (session, _clock) = cache(vec![grant("sign-in", None, 600)], vec![]);
    let exchanges = Arc::new(AtomicUsize::new(0));
    let obtain: Exchange = {
        let exchanges = exchanges.clone();
        Arc::new(move |token: SecretString| {
            let exchanges = exchanges.clone();
            Box::pin(async move {
                assert_eq!(token.expose_secret(), "sign-in");
                exchanges.fetch_add(1, Ordering::SeqCst);
                Ok(Some(grant("identity", None, 600).unwrap()))
            })
        })
    };
    let sign_in = session.access_token().await.unwrap();
    let exchanged = session
        .exchange(sign_in.clone(), obtain.clone())
        .await
        .unwrap();
    assert_eq!(exchanged.secret().expose_secret(), "identity");
    assert_eq!(exchanges.load(Ordering::SeqCst), 1);
    // A call refused with the sign-in token, whose cure comes after the exchange ended.
    let late = session.exchange(sign_in, obtain.clone()).await.unwrap();
    assert_eq!(late.secret().expose_secret(), "identity");
    // One whose cure first asked for the token the session serves now: the exchanged one.
    let served = session.access_token().await.unwrap();
    let again = session.exchange(served, obtain).await.unwrap();
    assert_eq!(again.secret().expose_secret(), "identity");
    assert_eq!(exchanges.load(Ordering::SeqCst), 1, "exchanged once");

    // Nothing to exchange a token for: the token itself.
    let (plain, _clock) = cache(vec![grant("sign-in", None, 600)], vec![]);
    let none: Exchange = Arc::new(|_| Box::pin(async { Ok(None) }));
    let token = plain.access_token().await.unwrap();
    let same = plain.exchange(token, none).await.unwrap();
    assert_eq!(same.secret().expose_secret(), "sign-in");
    assert!(!same.entry().extra.exchanged);
}

#[tokio::test]
async fn backoffs_challenges_and_a_store_without_refusals_keep_refusals_per_session() {
    let clock = ManualClock::new();
    let memory: Arc<dyn TokenStore> = Arc::new(crate::store::MemoryStore::new());
    // A transient failure backs off this session only: the jitter spreads the fleet's next
    // logins. A login challenge is this session's: its session token is no other's.
    let challenge = Err(Error::new(ErrorKind::NewPasswordRequired).with_status(200));
    for failure in [server_error(), challenge] {
        let key = fresh_key();
        let a = account_session(&memory, &key, &clock, "pw-1", vec![failure]);
        let b = account_session(&memory, &key, &clock, "pw-1", vec![grant("b", None, 600)]);
        a.access_token().await.unwrap_err();
        assert_eq!(secret(&b).await, "b");
        assert!(memory.load_refusal(&key).await.unwrap().is_none());
    }
    // A store of the application's own without the refusal methods shares none.
    let own: Arc<dyn TokenStore> = Arc::new(CountsReleases::default());
    let key = fresh_key();
    let a = account_session(&own, &key, &clock, "pw-1", vec![refused()]);
    let b = account_session(&own, &key, &clock, "pw-1", vec![refused()]);
    a.access_token().await.unwrap_err();
    b.access_token().await.unwrap_err();
    assert_eq!(b.provider.calls.load(Ordering::SeqCst), 1, "b sent its own");
}

/// Redis keeps a window for as long as it lasts (`PSETEX`), counted in Redis's own time: a
/// second session of the account is held for what is left of it, and logs in once Redis has
/// let it go. The window is a second long, waited out for real (Redis's time cannot be moved).
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_kept_in_redis_holds_every_session_of_the_account_until_redis_lets_it_go() {
    let Some((_, store)) = every_store("redis-window")
        .await
        .into_iter()
        .find(|(name, _)| *name == "redis")
    else {
        return;
    };
    let clock = ManualClock::new();
    let two_seconds = Some(Duration::from_secs(2));
    let windows = [
        (
            ErrorKind::RateLimited {
                retry_after: two_seconds,
            },
            429,
        ),
        (
            ErrorKind::AccountLocked {
                retry_after: two_seconds,
            },
            423,
        ),
    ];
    for (window, status) in windows {
        let key = fresh_key();
        let limited = Err(Error::new(window).with_status(status));
        let a = account_session(&store, &key, &clock, "pw-1", vec![limited]);
        let b = account_session(&store, &key, &clock, "pw-2", vec![grant("b", None, 600)]);
        a.access_token().await.unwrap_err();
        let held = b.access_token().await.unwrap_err();
        let left = match held.kind() {
            ErrorKind::RateLimited { retry_after } | ErrorKind::AccountLocked { retry_after } => {
                retry_after
            }
            other => panic!("{window:?}: held as {other:?}"),
        };
        assert_eq!(
            std::mem::discriminant(&held.kind()),
            std::mem::discriminant(&window)
        );
        assert!(
            left.is_some_and(|left| !left.is_zero() && left <= Duration::from_secs(2)),
            "{window:?}: what is left of the window, {left:?}"
        );
        assert_eq!(held.status(), Some(status));
        assert_eq!(b.provider.calls.load(Ordering::SeqCst), 0, "{window:?}");
        // Redis lets the window go in its own time; the sessions' clock passes it too.
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        clock.advance(Duration::from_secs(2));
        assert_eq!(secret(&b).await, "b", "{window:?}");
        assert_eq!(b.provider.calls.load(Ordering::SeqCst), 1, "{window:?}");
    }
}
