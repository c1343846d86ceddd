//! A fault-injecting IAM proxy on 127.0.0.1, in front of moto: forwards every request and, by rules
//! the test sets at runtime, answers some of them itself — IAM's `Throttling` error, HTTP 500 or
//! 503, a connection reset, added latency — and plays IAM's eventual consistency: `NoSuchEntity`
//! about a role for a while after its creation, `MalformedPolicyDocument` "Invalid principal in
//! policy" for a trust policy naming a role created moments ago. Every call is counted by action
//! (the `Action` field of the query-protocol body) and outcome, with its time. Runs an HTTP/1
//! server and client on a thread of its own (network I/O), stopped when the proxy is dropped.
//!
//! The eventual-consistency windows can be limited to one created role in N
//! ([`FaultProxy::consistency_one_role_in`]), so that a long run sees them at a chosen rate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::StackError;

/// Outcome of a call forwarded to moto and answered with success.
pub const OUTCOME_OK: &str = "ok";

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 with IAM's `Throttling` error ("Rate exceeded").
    Throttling,
    /// This HTTP status (500, 503, …) with an IAM error body.
    Status(u16),
    /// The connection is reset (TCP RST) without an answer; nothing reaches moto.
    Reset,
    /// The call is forwarded to moto and, when moto did it, the connection is reset instead of
    /// answered: the caller cannot tell that it happened. (A call moto refused is answered.)
    LostAnswer,
    /// The call is forwarded after this delay.
    Latency(Duration),
}

impl Fault {
    /// The outcome recorded for a call this fault answered.
    fn outcome(self) -> String {
        match self {
            Fault::Throttling => "Throttling".to_owned(),
            Fault::Status(status) => status.to_string(),
            Fault::Reset => "Reset".to_owned(),
            Fault::LostAnswer => "LostAnswer".to_owned(),
            Fault::Latency(_) => "Latency".to_owned(),
        }
    }
}

/// When to inject a fault: on the calls of one action (or any), one call in `every`, at most
/// `times` times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    action: Option<String>,
    fault: Fault,
    every: u32,
    times: Option<u32>,
}

impl Rule {
    /// `fault` on every call of every action, without end.
    pub fn new(fault: Fault) -> Self {
        Rule {
            action: None,
            fault,
            every: 1,
            times: None,
        }
    }

    /// Only on calls of `action` (e.g. `CreateRole`).
    pub fn on(mut self, action: &str) -> Self {
        self.action = Some(action.to_owned());
        self
    }

    /// On one matching call in `n` (the n-th, the 2n-th, …).
    pub fn every(mut self, n: u32) -> Self {
        self.every = n.max(1);
        self
    }

    /// At most `n` times.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
}

/// One call the proxy saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The query-protocol action (`GetRole`, …), `unknown` when the body names none.
    pub action: String,
    /// [`OUTCOME_OK`], moto's error code, or the injected fault (`Throttling`, `500`, `503`,
    /// `Reset`, `NoSuchEntity`, `MalformedPolicyDocument`).
    pub outcome: String,
    /// When the request arrived.
    pub at: Instant,
}

/// A rule and how it fared.
#[derive(Debug)]
struct ActiveRule {
    rule: Rule,
    matched: u32,
    injected: u32,
}

/// Rules, eventual-consistency windows, roles created and calls seen.
#[derive(Debug, Default)]
struct State {
    rules: Vec<ActiveRule>,
    missing_after_create: Option<Duration>,
    new_principals_invalid: Option<Duration>,
    /// Only one role in this many created is subject to the two windows above (0 or 1: every role).
    consistency_one_in: u32,
    /// Roles created through the proxy so far (successful CreateRole calls).
    created_count: u64,
    created: HashMap<String, Instant>,
    calls: Vec<Call>,
}

/// What to do with one request.
enum Decision {
    /// Forward, after this delay; then reset the connection instead of answering when `lost`.
    Forward {
        delay: Option<Duration>,
        lost: bool,
    },
    Answer(Fault),
    NoSuchEntity(String),
    InvalidPrincipal(String),
}

impl State {
    fn decide(&mut self, action: &str, form: &HashMap<String, String>, now: Instant) -> Decision {
        let role = form.get("RoleName").map(String::as_str).unwrap_or_default();
        if let Some(window) = self.missing_after_create
            && action != "CreateRole"
            && self
                .created
                .get(role)
                .is_some_and(|at| now.duration_since(*at) < window)
        {
            return Decision::NoSuchEntity(role.to_owned());
        }
        if let Some(window) = self.new_principals_invalid
            && let Some(document) = form.get("AssumeRolePolicyDocument").or_else(|| {
                form.get("PolicyDocument")
                    .filter(|_| action == "UpdateAssumeRolePolicy")
            })
            && let Some(young) = self.created.iter().find(|(name, at)| {
                now.duration_since(**at) < window
                    && document.contains(":role/")
                    && document.contains(&format!("/{name}\""))
            })
        {
            return Decision::InvalidPrincipal(young.0.clone());
        }
        for active in &mut self.rules {
            if active.rule.action.as_deref().is_some_and(|a| a != action) {
                continue;
            }
            if active.rule.times.is_some_and(|n| active.injected >= n) {
                continue;
            }
            active.matched += 1;
            if active.matched % active.rule.every != 0 {
                continue;
            }
            active.injected += 1;
            return match active.rule.fault {
                Fault::Latency(delay) => Decision::Forward {
                    delay: Some(delay),
                    lost: false,
                },
                Fault::LostAnswer => Decision::Forward {
                    delay: None,
                    lost: true,
                },
                fault => Decision::Answer(fault),
            };
        }
        Decision::Forward {
            delay: None,
            lost: false,
        }
    }

    /// Records a successful CreateRole of `role` at `at`, subject to the consistency windows when
    /// it is one of the sampled roles.
    fn created(&mut self, role: &str, at: Instant) {
        self.created_count += 1;
        if self
            .created_count
            .is_multiple_of(u64::from(self.consistency_one_in.max(1)))
        {
            self.created.insert(role.to_owned(), at);
        }
    }
}

/// The running proxy. Stops when dropped.
pub struct FaultProxy {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream_port` on 127.0.0.1, on a free port, with no rule.
    pub fn start(upstream_port: u16) -> Result<FaultProxy, StackError> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| StackError::io("bind the fault proxy", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| StackError::io("set up the fault proxy", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| StackError::io("read the fault proxy's address", e))?
            .port();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StackError::io("start the fault proxy's runtime", e))?;
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, stopped) = oneshot::channel();
        let shared = Arc::clone(&state);
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let thread = std::thread::Builder::new()
            .name("fault-proxy".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, upstream, shared, stopped).await,
                        Err(error) => eprintln!("fault proxy: {error}"),
                    }
                });
            })
            .map_err(|e| StackError::io("start the fault proxy's thread", e))?;
        Ok(FaultProxy {
            port,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The endpoint URL to give clients instead of moto's.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the rules; the first matching rule of a call decides.
    pub fn set_rules(&self, rules: impl IntoIterator<Item = Rule>) {
        self.state().rules = rules
            .into_iter()
            .map(|rule| ActiveRule {
                rule,
                matched: 0,
                injected: 0,
            })
            .collect();
    }

    /// Answers `NoSuchEntity` to every call about a role (but CreateRole) for `window` after its
    /// creation through the proxy; `None` stops it.
    pub fn missing_after_create(&self, window: Option<Duration>) {
        self.state().missing_after_create = window;
    }

    /// Answers `MalformedPolicyDocument` "Invalid principal in policy" to CreateRole and
    /// UpdateAssumeRolePolicy when the trust policy names a role created through the proxy less
    /// than `window` ago; `None` stops it.
    pub fn invalid_new_principals(&self, window: Option<Duration>) {
        self.state().new_principals_invalid = window;
    }

    /// Limits the eventual-consistency windows to one role in `n` created from now on (the n-th,
    /// the 2n-th, …); 1 (as by default) subjects every role to them.
    pub fn consistency_one_role_in(&self, n: u32) {
        self.state().consistency_one_in = n;
    }

    /// Every call seen, in order of arrival.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// How many calls of `action` had `outcome`.
    pub fn count(&self, action: &str, outcome: &str) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|call| call.action == action && call.outcome == outcome)
            .count()
    }

    /// Forgets the calls seen so far.
    pub fn clear_calls(&self) {
        self.state().calls.clear();
    }

    /// The calls seen so far, forgotten here at the same moment.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state().calls)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Accepts connections until `stopped`.
async fn serve(
    listener: TcpListener,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let requests = Arc::new(AtomicU64::new(0));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = &mut stopped => return,
        };
        // A second handle on the socket, to reset it from the request handler.
        let Ok(socket) = stream.as_fd().try_clone_to_owned() else {
            continue;
        };
        let socket = Arc::new(socket);
        let state = Arc::clone(&state);
        let requests = Arc::clone(&requests);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                handle(
                    request,
                    upstream,
                    Arc::clone(&state),
                    Arc::clone(&socket),
                    requests.fetch_add(1, Ordering::Relaxed),
                )
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Answers one request: forwarded, or a fault. Once read, the request is decided, forwarded and
/// recorded in a task of its own, so that a client gone meanwhile (a process killed) does not
/// leave a call done at moto unrecorded.
async fn handle(
    request: Request<Incoming>,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    socket: Arc<OwnedFd>,
    number: u64,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let read = Read { parts, body, at };
    tokio::spawn(answer(read, upstream, state, socket, number))
        .await
        .map_err(std::io::Error::other)?
}

/// A request read to its end, and when it arrived.
struct Read {
    parts: hyper::http::request::Parts,
    body: Bytes,
    at: Instant,
}

/// Decides, forwards and records one request.
async fn answer(
    read: Read,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    socket: Arc<OwnedFd>,
    number: u64,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let Read { parts, body, at } = read;
    let form = parse_form(&body);
    let action = form
        .get("Action")
        .cloned()
        .unwrap_or_else(|| "unknown".to_owned());
    let decision = lock(&state).decide(&action, &form, at);
    let record = |outcome: String| {
        lock(&state).calls.push(Call {
            action: action.clone(),
            outcome,
            at,
        });
    };
    let request_id = format!("fault-proxy-{number}");
    let (delay, lost) = match decision {
        Decision::Forward { delay, lost } => (delay, lost),
        Decision::Answer(Fault::Reset) => {
            record(Fault::Reset.outcome());
            return Err(reset(&socket)?);
        }
        Decision::Answer(fault) => {
            record(fault.outcome());
            let (status, kind, code, message) = match fault {
                Fault::Status(503) => {
                    (503, "Receiver", "ServiceUnavailable", "Service unavailable")
                }
                Fault::Status(status) => {
                    (status, "Receiver", "InternalFailure", "Internal failure")
                }
                _ => (400, "Sender", "Throttling", "Rate exceeded"),
            };
            return Ok(error_response(status, kind, code, message, &request_id));
        }
        Decision::NoSuchEntity(role) => {
            record("NoSuchEntity".to_owned());
            let message = format!("The role with name {role} cannot be found.");
            return Ok(error_response(
                404,
                "Sender",
                "NoSuchEntity",
                &message,
                &request_id,
            ));
        }
        Decision::InvalidPrincipal(role) => {
            record("MalformedPolicyDocument".to_owned());
            let message = format!("Invalid principal in policy: \"AWS\":\"role/{role}\"");
            return Ok(error_response(
                400,
                "Sender",
                "MalformedPolicyDocument",
                &message,
                &request_id,
            ));
        }
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let forwarded = Request::from_parts(parts, Full::new(body));
    let response = forward(upstream, forwarded).await?;
    let outcome = if response.status().is_success() {
        OUTCOME_OK.to_owned()
    } else {
        error_code(response.body_bytes()).unwrap_or_else(|| response.status().as_str().to_owned())
    };
    if action == "CreateRole"
        && outcome == OUTCOME_OK
        && let Some(role) = form.get("RoleName")
    {
        lock(&state).created(role, Instant::now());
    }
    if lost && outcome == OUTCOME_OK {
        record(Fault::LostAnswer.outcome());
        return Err(reset(&socket)?);
    }
    record(outcome);
    Ok(response.into_response())
}

/// The largest number of `calls` (in order of arrival) within any `window`.
pub fn busiest<'c>(calls: impl IntoIterator<Item = &'c Call>, window: Duration) -> usize {
    let arrivals: Vec<Instant> = calls.into_iter().map(|call| call.at).collect();
    let mut first = 0;
    let mut most = 0;
    for (last, at) in arrivals.iter().enumerate() {
        while at.duration_since(arrivals[first]) >= window {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most
}

/// Makes the connection end with a RST (a socket that lingers zero seconds sends one when closed)
/// and returns the error that closes it.
fn reset(socket: &OwnedFd) -> Result<std::io::Error, std::io::Error> {
    socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO))?;
    Ok(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "injected reset",
    ))
}

/// A response read to its end.
struct Forwarded {
    parts: hyper::http::response::Parts,
    body: Bytes,
}

impl Forwarded {
    fn status(&self) -> StatusCode {
        self.parts.status
    }

    fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        Response::from_parts(self.parts, Full::new(self.body))
    }
}

/// Sends `request` to `upstream` on a connection of its own.
async fn forward(
    upstream: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<Forwarded, std::io::Error> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok(Forwarded { parts, body })
}

/// IAM's XML error response.
fn error_response(
    status: u16,
    kind: &str,
    code: &str,
    message: &str,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let message = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;");
    let body = format!(
        "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    response
}

/// The `<Code>` of an XML error body.
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")?;
    Some(text[start..start + end].trim().to_owned())
}

/// The fields of an `application/x-www-form-urlencoded` body.
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// Decodes `+` and `%XX` escapes.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of a hexadecimal digit.
fn hex(digit: &u8) -> Option<u8> {
    char::from(*digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_decoded() {
        let form = parse_form(
            b"Action=CreateRole&RoleName=app&AssumeRolePolicyDocument=%7B%22a%22%3A+1%7D&Bad=%zz",
        );
        assert_eq!(form["Action"], "CreateRole");
        assert_eq!(form["AssumeRolePolicyDocument"], "{\"a\": 1}");
        assert_eq!(form["Bad"], "%zz");
    }

    #[test]
    fn rules_inject_by_action_rate_and_count() {
        let mut state = State {
            rules: vec![ActiveRule {
                rule: Rule::new(Fault::Throttling).on("GetRole").every(2).times(2),
                matched: 0,
                injected: 0,
            }],
            ..State::default()
        };
        let now = Instant::now();
        let form = HashMap::new();
        let injected: Vec<bool> = (0..6)
            .map(|_| matches!(state.decide("GetRole", &form, now), Decision::Answer(_)))
            .collect();
        assert_eq!(injected, [false, true, false, true, false, false]);
        assert!(matches!(
            state.decide("TagRole", &form, now),
            Decision::Forward {
                delay: None,
                lost: false
            }
        ));
    }

    #[test]
    fn new_roles_are_missing_then_found_and_invalid_as_principals() {
        let mut state = State::default();
        let t0 = Instant::now();
        state.created("app", t0);
        state.missing_after_create = Some(Duration::from_secs(2));
        state.new_principals_invalid = Some(Duration::from_secs(5));
        let get = HashMap::from([("RoleName".to_owned(), "app".to_owned())]);
        assert!(matches!(
            state.decide("GetRole", &get, t0 + Duration::from_secs(1)),
            Decision::NoSuchEntity(_)
        ));
        assert!(matches!(
            state.decide("GetRole", &get, t0 + Duration::from_secs(2)),
            Decision::Forward { delay: None, .. }
        ));
        let trust = HashMap::from([
            ("RoleName".to_owned(), "consumer".to_owned()),
            (
                "AssumeRolePolicyDocument".to_owned(),
                r#"{"Principal":{"AWS":"arn:aws:iam::123456789012:role/app"}}"#.to_owned(),
            ),
        ]);
        assert!(matches!(
            state.decide("CreateRole", &trust, t0 + Duration::from_secs(4)),
            Decision::InvalidPrincipal(_)
        ));
        assert!(matches!(
            state.decide("CreateRole", &trust, t0 + Duration::from_secs(5)),
            Decision::Forward { delay: None, .. }
        ));
    }

    #[test]
    fn consistency_windows_can_sample_the_roles() {
        let mut state = State {
            consistency_one_in: 3,
            missing_after_create: Some(Duration::from_secs(2)),
            ..State::default()
        };
        let t0 = Instant::now();
        let missing: Vec<bool> = (0..6)
            .map(|i| {
                let name = format!("role-{i}");
                state.created(&name, t0);
                let get = HashMap::from([("RoleName".to_owned(), name)]);
                matches!(
                    state.decide("GetRole", &get, t0 + Duration::from_secs(1)),
                    Decision::NoSuchEntity(_)
                )
            })
            .collect();
        assert_eq!(missing, [false, false, true, false, false, true]);
    }

    #[test]
    fn the_busiest_window_is_counted() {
        let t0 = Instant::now();
        let calls: Vec<Call> = [0, 100, 900, 1000, 1050, 2500]
            .map(|ms| Call {
                action: "GetRole".to_owned(),
                outcome: OUTCOME_OK.to_owned(),
                at: t0 + Duration::from_millis(ms),
            })
            .into();
        assert_eq!(busiest(&calls, Duration::from_secs(1)), 4);
        assert_eq!(busiest(&calls, Duration::from_millis(100)), 2);
        assert_eq!(busiest(&calls[..1], Duration::from_secs(1)), 1);
        assert_eq!(busiest(&[], Duration::from_secs(1)), 0);
    }

    #[test]
    fn a_lost_answer_is_forwarded() {
        let mut state = State {
            rules: vec![ActiveRule {
                rule: Rule::new(Fault::LostAnswer).on("CreateRole"),
                matched: 0,
                injected: 0,
            }],
            ..State::default()
        };
        assert!(matches!(
            state.decide("CreateRole", &HashMap::new(), Instant::now()),
            Decision::Forward {
                delay: None,
                lost: true
            }
        ));
    }
}
