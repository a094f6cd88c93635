//! `expect.cel`: the expression is evaluated off the probe runtime, on [`THREADS`] dedicated
//! threads fed by a queue of at most [`QUEUE`] jobs, and awaited within the probe's own
//! deadline. A check never has two evaluations at once: while one still runs (it outlived its
//! probe), the next probe fails fast instead of queueing more work. Every comprehension calls
//! [`TICK`] on each iteration, which fails once the probe's deadline has passed, so a
//! hostile body stops burning CPU within one iteration of the deadline.
//!
//! The body is the buffered first `regexBodyLimit` bytes, parsed as JSON where they parse
//! (the tree charged to the probe's body-budget reservation as for `expect.json`), else the
//! text. The CEL values borrow the parsed tree's strings; each node's box and each map entry
//! is charged on top, so parsing and conversion together stay within `--body-buffer-budget`,
//! and the reservation is held until the evaluation ends, even past its probe. What the
//! expression itself copies (`[body, body]`, `map(x, body)`) is charged too: each [`METER`]
//! and [`TICK`] reads the evaluator thread's jemalloc counters ([`heap`]) and grows the
//! reservation to what the thread holds beyond its start; past the budget the evaluation
//! stops at once with `BodyBudgetExceeded`. At most one value is copied between two checks,
//! so the overshoot is at most one copy of a value already charged. Without jemalloc as the
//! global allocator (`cargo run` without `--features jemalloc`) only the deadline bounds it.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    time::Instant,
};

use cel::{
    Context, ExecutionError, FunctionContext, Value,
    common::{
        types::{
            CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
        },
        value::{CowVal, Val},
    },
};

use super::{
    Failure,
    body::over_budget,
    budget::Reservation,
    heap,
    json::{self, JsonError, MAX_SHOWN},
};
use crate::api::{CEL_STACK, CelExpression, METER, Reason, TICK, display_text};

/// Evaluator threads: at most this many cores ever burn on CEL.
pub const THREADS: usize = 2;
/// Evaluations waiting for a thread; past it a probe fails fast rather than wait.
pub const QUEUE: usize = 64;
/// Most characters of the expression a message shows.
const SHOWN_EXPRESSION: usize = 80;

/// Bytes charged per CEL node beyond the parsed tree: its box in the parent and the
/// allocation it points to (at most 48 bytes, rounded up by the allocator).
const NODE: u64 = (size_of::<Box<dyn Val>>() + 80) as u64;
/// Bytes charged per map entry: key and boxed value in a table at most half full.
const ENTRY: u64 = 2 * (size_of::<CelMapKey>() + size_of::<Box<dyn Val>>() + 1) as u64;

/// Why an expression did not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CelFailure {
    #[error("was false")]
    False,
    #[error("returned {0}, not a bool")]
    NotBool(String),
    #[error("failed: {0}")]
    Error(String),
    /// Stopped by the tick at the deadline, or abandoned there (it stops at its next step).
    #[error("did not finish within the probe's timeout: evaluation stopped")]
    Deadline,
    #[error(
        "was not evaluated: this check's previous evaluation is still running (it outlived its probe's timeout)"
    )]
    Busy,
    #[error("was not evaluated: all {THREADS} CEL threads are busy and {QUEUE} evaluations wait")]
    Saturated,
    #[error("was not evaluated: {0}")]
    Unavailable(String),
}

/// A check's expression with its one-evaluation-at-a-time latch, built once per runner.
#[derive(Debug, Clone)]
pub struct CelRun {
    pub expr: Arc<CelExpression>,
    busy: Arc<AtomicBool>,
}

impl CelRun {
    pub fn new(expr: Arc<CelExpression>) -> Self {
        Self {
            expr,
            busy: Arc::default(),
        }
    }

    /// Whether an evaluation of this check is running or queued.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }
}

/// What an expression sees of a response.
pub struct CelInput {
    /// The buffered body, whole (a cut or overflowing body fails before).
    pub body: Vec<u8>,
    /// The body budget bytes it holds; the parsed tree is charged to it too.
    pub reservation: Reservation,
    /// Lower-case names and first values; credential headers' values replaced.
    pub headers: Vec<(String, String)>,
    pub status: u16,
}

/// Evaluations running or queued, all checks together (for tests and the page).
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Acquire)
}

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

type Job = Box<dyn FnOnce() + Send>;

/// The standard environment, built once rather than per evaluation.
static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();

static POOL: OnceLock<Result<SyncSender<Job>, String>> = OnceLock::new();

/// Clears a check's latch and the global count when its evaluation ends, however it ends.
struct Latch(Arc<AtomicBool>);

impl Drop for Latch {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Judges `input`, waiting at most until `deadline` (the probe's own).
pub async fn judge(
    run: &CelRun,
    input: CelInput,
    deadline: tokio::time::Instant,
) -> Result<(), Failure> {
    submit(run, input, deadline)
        .await
        .map_err(|failed| match failed {
            Failed::Budget(failure) => failure,
            Failed::Cel(why) => Failure::new(Reason::BodyMismatch, message(&run.expr.text, &why)),
        })
}

/// The message of a failed expression: the expression and what happened, each cut.
pub fn message(text: &str, why: &CelFailure) -> String {
    let why = display_text(&why.to_string(), MAX_SHOWN).into_owned();
    format!("cel `{}` {why}", display_text(text, SHOWN_EXPRESSION))
}

/// Why an evaluation failed: the expression, or the body budget.
enum Failed {
    Cel(CelFailure),
    Budget(Failure),
}

async fn submit(
    run: &CelRun,
    input: CelInput,
    deadline: tokio::time::Instant,
) -> Result<(), Failed> {
    let pool = pool().map_err(|e| Failed::Cel(CelFailure::Unavailable(e)))?;
    if (run.busy)
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(Failed::Cel(CelFailure::Busy));
    }
    IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
    let latch = Latch(run.busy.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let expr = run.expr.clone();
    let stop = deadline.into_std();
    let job: Job = Box::new(move || {
        let verdict = std::panic::catch_unwind(AssertUnwindSafe(|| evaluate(&expr, input, stop)))
            .unwrap_or_else(|_| {
                Err(Failed::Cel(CelFailure::Error(
                    "the evaluator panicked".into(),
                )))
            });
        // Free the latch first: a probe that has its verdict may start the next evaluation.
        drop(latch);
        let _ = tx.send(verdict);
    });
    match pool.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => return Err(Failed::Cel(CelFailure::Saturated)),
        Err(TrySendError::Disconnected(_)) => {
            return Err(Failed::Cel(CelFailure::Unavailable(
                "the CEL threads stopped".into(),
            )));
        }
    }
    match tokio::time::timeout_at(deadline, rx).await {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(_)) => Err(Failed::Cel(CelFailure::Unavailable(
            "the evaluation was dropped".into(),
        ))),
        Err(_) => Err(Failed::Cel(CelFailure::Deadline)),
    }
}

/// The evaluator threads' queue, started on first use.
fn pool() -> Result<&'static SyncSender<Job>, String> {
    POOL.get_or_init(|| {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("canary-cel-{i}"))
                .stack_size(CEL_STACK)
                .spawn(move || work(&rx))
                .map_err(|e| format!("cannot start a CEL thread: {e}"))?;
        }
        Ok(tx)
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let next = match queue.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = next else { return };
        job();
    }
}

/// Parses, converts and evaluates, on an evaluator thread.
fn evaluate(expr: &CelExpression, input: CelInput, stop: Instant) -> Result<(), Failed> {
    let CelInput {
        body,
        mut reservation,
        headers,
        status,
    } = input;
    let tree = match json::parse(&body, &mut reservation) {
        Ok(tree) => Some(tree),
        Err(JsonError::Budget(wanted)) => {
            return Err(Failed::Budget(over_budget(
                &reservation,
                wanted as usize,
                "cel",
            )));
        }
        Err(JsonError::Parse(_)) => None,
    };
    let text = tree.is_none().then(|| String::from_utf8_lossy(&body));
    let mut charge = Charge::new(&mut reservation);
    let body_val: Box<dyn Val + '_> = match (&tree, &text) {
        (Some(tree), _) => to_val(tree, &mut charge)?,
        (None, Some(text)) => Box::new(CelString::from(text.as_ref())),
        (None, None) => Box::new(CelNull),
    };
    let used = charge.used;
    let meter = Arc::new(Mutex::new(Meter::start(reservation, used)));
    let env = ENV.get_or_init(|| Arc::new(cel::Env::stdlib())).clone();
    let mut ctx = Context::with_env(env);
    ctx.add_variable_as_val("body", body_val);
    ctx.add_variable_as_val("headers", headers_val(&headers));
    ctx.add_variable_as_val("status", Box::new(CelInt::from(i64::from(status))));
    for name in [TICK, METER] {
        ctx.add_function(name, checkpoint(stop, meter.clone()))
            .map_err(|e| Failed::Cel(CelFailure::Error(e.to_string())))?;
    }
    let result = ctx.resolve(&expr.expr);
    let mut meter = crate::lock(&meter);
    if let Err(wanted) = meter.check() {
        let what = "cel (with the values the expression copied)";
        return Err(Failed::Budget(over_budget(
            &meter.reservation,
            wanted,
            what,
        )));
    }
    match result {
        Ok(Value::Bool(true)) => Ok(()),
        Ok(Value::Bool(false)) => Err(Failed::Cel(CelFailure::False)),
        Ok(other) => Err(Failed::Cel(CelFailure::NotBool(shown(&other)))),
        Err(_) if Instant::now() >= stop => Err(Failed::Cel(CelFailure::Deadline)),
        Err(e) => Err(Failed::Cel(CelFailure::Error(error_text(&e)))),
    }
}

/// What [`TICK`] and [`METER`] run: fails once the deadline has passed or once what the
/// evaluation holds outgrows the body budget, else hands its argument back.
fn checkpoint(stop: Instant, meter: Arc<Mutex<Meter>>) -> Tick {
    Box::new(move |ftx: &mut FunctionContext<'_, '_>| {
        if Instant::now() >= stop {
            return Err(ftx.error("stopped at the probe's deadline"));
        }
        if crate::lock(&meter).check().is_err() {
            return Err(ftx.error("stopped: over the body buffer budget"));
        }
        ftx.args.pop().ok_or_else(|| ftx.error("no argument"))
    })
}

/// Charges what an evaluation's thread holds beyond its start (the values the expression
/// copies) to the probe's reservation, on top of the converted body. Once refused it stays
/// refused, so every later checkpoint fails and the evaluation unwinds.
struct Meter {
    reservation: Reservation,
    /// Bytes charged before the evaluation: the parsed tree and its CEL values.
    used: u64,
    /// The thread's [`heap::net`] at the start; `None` without jemalloc's counters.
    start: Option<u64>,
    refused: Option<usize>,
}

impl Meter {
    fn start(reservation: Reservation, used: u64) -> Self {
        Self {
            reservation,
            used,
            start: heap::net(),
            refused: None,
        }
    }

    /// `Err(bytes wanted)` when the reservation cannot cover what the evaluation holds.
    fn check(&mut self) -> Result<(), usize> {
        if let Some(wanted) = self.refused {
            return Err(wanted);
        }
        let (Some(start), Some(now)) = (self.start, heap::net()) else {
            return Ok(());
        };
        let total = self.used.saturating_add(heap::grown(start, now));
        if self.reservation.cover(total) {
            return Ok(());
        }
        let wanted = usize::try_from(total).unwrap_or(usize::MAX);
        self.refused = Some(wanted);
        Err(wanted)
    }
}

type Tick = Box<
    dyn for<'c, 'v> Fn(&mut FunctionContext<'c, 'v>) -> Result<CowVal<'c, 'v>, ExecutionError>
        + Send
        + Sync,
>;

fn error_text(error: &ExecutionError) -> String {
    let text = error.to_string();
    let text = text
        .strip_prefix("Error executing function '@canary_tick': ")
        .unwrap_or(&text);
    display_text(text, MAX_SHOWN).into_owned()
}

/// A result as a message shows it: its type, and the value when it is a scalar.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the string \"{}\"", display_text(s, 60)),
        Value::Int(i) => format!("the int {i}"),
        Value::UInt(u) => format!("the uint {u}"),
        Value::Float(f) => format!("the double {f}"),
        Value::Null => "null".into(),
        Value::List(list) => format!("a list of {}", list.len()),
        Value::Map(map) => format!("a map of {}", map.map.len()),
        _ => "a value of another type".into(),
    }
}

/// Charges CEL nodes to the probe's reservation, growing it by doubling.
struct Charge<'r> {
    reservation: &'r mut Reservation,
    used: u64,
}

impl<'r> Charge<'r> {
    fn new(reservation: &'r mut Reservation) -> Self {
        let used = reservation.bytes();
        Self { reservation, used }
    }

    fn take(&mut self, bytes: u64) -> Result<(), Failed> {
        self.used = self.used.saturating_add(bytes);
        if self.reservation.cover(self.used) {
            return Ok(());
        }
        let wanted = usize::try_from(self.used).unwrap_or(usize::MAX);
        Err(Failed::Budget(over_budget(self.reservation, wanted, "cel")))
    }
}

/// The parsed body as CEL values borrowing its strings.
fn to_val<'v>(
    value: &'v serde_json::Value,
    charge: &mut Charge,
) -> Result<Box<dyn Val + 'v>, Failed> {
    use serde_json::Value as J;
    charge.take(NODE)?;
    Ok(match value {
        J::Null => Box::new(CelNull),
        J::Bool(b) => Box::new(CelBool::from(*b)),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        J::String(s) => Box::new(CelString::from(s.as_str())),
        J::Array(items) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                list.push(to_val(item, charge)?);
            }
            Box::new(CelList::from(list))
        }
        J::Object(members) => {
            let mut map = HashMap::with_capacity(members.len());
            for (key, item) in members {
                charge.take(ENTRY)?;
                map.insert(CelMapKey::from(key.as_str()), to_val(item, charge)?);
            }
            Box::new(CelMap::from(map))
        }
    })
}

/// The first value of each header, by lower-case name; the values of credential headers
/// (Set-Cookie, Cookie, Authorization, Proxy-Authorization) replaced by `[redacted]`, so no
/// message can show them.
pub fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    use http::header;
    let secret = [
        header::SET_COOKIE,
        header::COOKIE,
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
    ];
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(headers.keys_len());
    for name in headers.keys() {
        let value = match headers.get(name) {
            _ if secret.contains(name) => "[redacted]".into(),
            Some(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
            None => continue,
        };
        pairs.push((name.as_str().to_owned(), value));
    }
    pairs
}

/// `headers`: lower-case names to first values.
fn headers_val<'v>(headers: &'v [(String, String)]) -> Box<dyn Val + 'v> {
    let mut map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = HashMap::new();
    for (name, value) in headers {
        map.entry(CelMapKey::from(name.as_str()))
            .or_insert_with(|| Box::new(CelString::from(value.as_str())));
    }
    Box::new(CelMap::from(map))
}

#[cfg(test)]
#[path = "cel_tests.rs"]
mod tests;
