//! An HTTP server that holds every answer until the test lets it go: a test can then make
//! sure that a second caller arrives while a login is still in flight, instead of hoping a
//! delay is long enough. (wiremock answers from one thread, so a responder that blocked there
//! would stop the server from even receiving the next request.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// A request as the server received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The headers, names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Answer = dyn Fn(&Recorded, usize) -> (u16, String) + Send + Sync;
type Gated = dyn Fn(&Recorded) -> bool + Send + Sync;

struct State {
    requests: Mutex<Vec<Recorded>>,
    /// How many answers may go: request `i` (from 0) is answered once this is above `i`.
    released: watch::Sender<usize>,
    answer: Box<Answer>,
    /// A routed server's rule: which requests wait for [`HeldServer::open`] (the others are
    /// answered at once). `None`: every request waits for its release by index.
    gated: Option<Box<Gated>>,
    open: watch::Sender<bool>,
}

/// The server; it stops when dropped.
pub struct HeldServer {
    uri: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HeldServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HeldServer {
    /// A server answering its `i`-th request (from 0) with `answer(i)` (status, JSON body),
    /// once released.
    pub async fn start(answer: impl Fn(usize) -> (u16, String) + Send + Sync + 'static) -> Self {
        Self::serve_with(Box::new(move |_, i| answer(i)), None).await
    }

    /// A server answering each request with `answer(request, i)` (`i` counts from 0): at once,
    /// or, for a request `gated` picks, once [`Self::open`] lets those go.
    pub async fn start_routed(
        answer: impl Fn(&Recorded, usize) -> (u16, String) + Send + Sync + 'static,
        gated: impl Fn(&Recorded) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self::serve_with(Box::new(answer), Some(Box::new(gated))).await
    }

    /// Lets every request a routed server holds go, now and from now on.
    pub fn open(&self) {
        self.state.open.send_replace(true);
    }

    async fn serve_with(answer: Box<Answer>, gated: Option<Box<Gated>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            released: watch::channel(0).0,
            answer,
            gated,
            open: watch::channel(false).0,
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, serving.clone()));
            }
        });
        Self { uri, state, task }
    }

    pub fn uri(&self) -> String {
        self.uri.clone()
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// How many requests so far went to a path starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count()
    }

    /// Lets the first `n` answers go.
    pub fn release(&self, n: usize) {
        self.state.released.send_modify(|r| *r = (*r).max(n));
    }

    /// Lets every answer go, now and from now on.
    pub fn release_all(&self) {
        self.release(usize::MAX);
    }
}

/// Waits until `condition` holds, checking every few milliseconds; fails after a minute (a
/// deadlock guard, not a verdict: the tests' verdicts are counts taken after the wait).
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn serve(mut stream: tokio::net::TcpStream, state: Arc<State>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut request_line = head.lines().next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buffer[head_end..head_end + length].to_vec();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let recorded = Recorded {
        method,
        path,
        headers,
        body,
    };
    let index = {
        let mut requests = state.requests.lock().unwrap();
        requests.push(recorded.clone());
        requests.len() - 1
    };
    match &state.gated {
        None => {
            let mut released = state.released.subscribe();
            if released.wait_for(|r| *r > index).await.is_err() {
                return;
            }
        }
        Some(gated) if gated(&recorded) => {
            let mut open = state.open.subscribe();
            if open.wait_for(|open| *open).await.is_err() {
                return;
            }
        }
        Some(_) => {}
    }
    let (status, body) = (state.answer)(&recorded, index);
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
