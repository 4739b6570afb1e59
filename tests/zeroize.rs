//! Secrets copied into header values are zeroized before their memory is freed: an allocator
//! that looks into every block freed while a session is built and dropped finds no copy of the
//! secret there.
#![cfg(all(feature = "passwordsafe", feature = "weavr"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The system allocator, which counts the freed blocks that still hold [`MARKER`].
struct Scanning;

/// A secret no other code holds: found in a freed block, it was left there unzeroized.
const MARKER: &[u8] = b"Zr0-MARKER-7c1e5f-SECRET";

static SCANNING: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);
/// One scan at a time: the tests share the allocator's counters.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SCANNING.load(Ordering::Relaxed) {
            // SAFETY: the block is still ours until `System.dealloc` below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(MARKER.len()).any(|w| w == MARKER) {
                FOUND.fetch_add(1, Ordering::Relaxed);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

/// The secret, in a heap block of exactly its length (so that making a `SecretString` of it
/// moves the block rather than copying it), which `SecretString` zeroizes when dropped.
fn secret() -> tokensmith::SecretString {
    let text = String::from(std::str::from_utf8(MARKER).unwrap());
    assert_eq!(text.capacity(), text.len());
    tokensmith::SecretString::from(text)
}

/// How many freed blocks held the secret while `work` ran.
fn freed_copies(work: impl FnOnce()) -> usize {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    FOUND.store(0, Ordering::SeqCst);
    SCANNING.store(true, Ordering::SeqCst);
    work();
    SCANNING.store(false, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

#[test]
fn password_safe_s_ps_auth_header_is_zeroized_when_the_session_is_dropped() {
    let copies = freed_copies(|| {
        let session = tokensmith::passwordsafe::Session::builder()
            .host("pws.example.com")
            .ps_auth(secret(), r"doe-main\johndoe", Some(secret()))
            .build()
            .unwrap();
        drop(session);
    });
    assert_eq!(copies, 0, "a freed block held the API key or the password");
}

#[test]
fn weavr_s_api_key_header_is_zeroized_when_the_session_is_dropped() {
    let copies = freed_copies(|| {
        let session = tokensmith::weavr::Session::builder()
            .base_url("https://weavr-live.example/multi")
            .api_key(secret())
            .email("user@example.com")
            .password("Pa$$w0rd")
            .build()
            .unwrap();
        drop(session);
    });
    assert_eq!(copies, 0, "a freed block held the api key");
}

#[test]
fn the_scan_finds_a_secret_left_in_freed_memory() {
    // The allocator's own check: an ordinary String holding the secret is freed as it is.
    let copies = freed_copies(|| {
        let plain = String::from(std::str::from_utf8(MARKER).unwrap());
        drop(std::hint::black_box(plain));
    });
    assert_eq!(copies, 1);
}
