//! The one backoff of every network call ecrship makes and retries itself: the daemon's push,
//! the registry client, S3. go-containerregistry's `internal/retry` has the same shape: the
//! caller runs the call and says which failures are worth another attempt; this module owns
//! the schedule, the waiting, and what is said while it waits.
//!
//! - At most [`ATTEMPTS`] attempts, [`DELAYS`] apart (0.5 s, 1 s, 2 s): a failure that lasts
//!   beyond a few seconds is not a blip, and a CodeBuild run should fail with its cause rather
//!   than wait minutes on it.
//! - An attempt may have a time limit ([`Policy::attempt_timeout`]); running out of it counts
//!   as a transient failure.
//! - An attempt with a time limit that has waited [`SPEAK_AFTER`] says so, once, on one line:
//!   what it waits for, and which attempt this is. A hung endpoint is never silent. (A push,
//!   with no limit, reports its own progress.)
//! - Each retry is said on one line, by the caller's `on_retry` (the daemon's push says it in
//!   the image's log) or by [`log_retry`].
//!
//! The AWS SDK retries on its own; [`speaking`] gives its calls the same waiting line.

use std::fmt;
use std::future::Future;
use std::time::Duration;

/// Delays between attempts: one fewer than [`ATTEMPTS`].
pub const DELAYS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];
/// Attempts of a call before it gives up.
pub const ATTEMPTS: usize = DELAYS.len() + 1;
/// How long an attempt waits before a line says what it waits for.
pub const SPEAK_AFTER: Duration = Duration::from_secs(5);

/// How patiently a call is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Each attempt ends after this long, as a transient failure; `None`: the call bounds
    /// itself (a push streams for as long as its layers take).
    pub attempt_timeout: Option<Duration>,
}

impl Policy {
    /// The longest a call can take before it gives up: every attempt timed out, and every delay.
    pub fn bound(&self) -> Option<Duration> {
        let delays: Duration = DELAYS.iter().sum();
        self.attempt_timeout
            .map(|limit| limit * ATTEMPTS as u32 + delays)
    }
}

/// How one attempt ended, when it did not succeed.
#[derive(Debug)]
pub enum Failure<E> {
    /// The call's own error.
    Failed(E),
    /// No answer within [`Policy::attempt_timeout`].
    TimedOut(Duration),
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Failed(e) => e.fmt(f),
            Failure::TimedOut(limit) => write!(f, "no answer within {}s", limit.as_secs()),
        }
    }
}

/// A call that gave up: its last failure, and how many attempts were made.
#[derive(Debug)]
pub struct GaveUp<E> {
    pub last: Failure<E>,
    pub attempts: usize,
    /// Whether the last failure was one another attempt could have got past.
    pub transient: bool,
}

/// A retry about to happen, for the line that says so.
#[derive(Debug)]
pub struct Retrying<'a> {
    /// What is tried: `registry r: GET manifest of app:v1`.
    pub what: &'a str,
    /// Why the last attempt failed.
    pub cause: String,
    pub delay: Duration,
    /// The attempt about to be made (2 for the first retry), out of [`ATTEMPTS`].
    pub attempt: usize,
}

impl fmt::Display for Retrying<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; retrying in {:.1}s (attempt {} of {ATTEMPTS})",
            self.what,
            self.cause,
            self.delay.as_secs_f32(),
            self.attempt
        )
    }
}

/// Says a retry on stderr, as a warning.
pub fn log_retry(retrying: &Retrying<'_>) {
    tracing::warn!("{retrying}");
}

/// ` (4 attempts)` after an error's action when more than one attempt was made: the one way
/// every error says it was retried.
pub fn attempts_note(attempts: usize) -> String {
    if attempts > 1 {
        format!(" ({attempts} attempts)")
    } else {
        String::new()
    }
}

/// Runs `call` until it succeeds, fails with an error `transient` rejects, or has been tried
/// [`ATTEMPTS`] times. `what` names the call in the lines said while it waits and retries.
pub async fn run<T, E, F, Fut>(
    policy: Policy,
    what: &str,
    mut call: F,
    transient: impl Fn(&E) -> bool,
    on_retry: &mut (dyn FnMut(&Retrying<'_>) + Send),
) -> Result<T, GaveUp<E>>
where
    E: fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        let failure = match attempt_once(policy, what, attempt, call()).await {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        let worth_another = match &failure {
            Failure::Failed(e) => transient(e),
            Failure::TimedOut(_) => true,
        };
        match DELAYS.get(attempt - 1).filter(|_| worth_another) {
            Some(&delay) => {
                attempt += 1;
                on_retry(&Retrying {
                    what,
                    cause: failure.to_string(),
                    delay,
                    attempt,
                });
                tokio::time::sleep(delay).await;
            }
            None => {
                return Err(GaveUp {
                    last: failure,
                    attempts: attempt,
                    transient: worth_another,
                });
            }
        }
    }
}

/// One attempt, bounded by the policy, saying once what it waits for after [`SPEAK_AFTER`]
/// (only a call with a time limit: one answer awaited, not a stream that reports as it goes).
async fn attempt_once<T, E>(
    policy: Policy,
    what: &str,
    attempt: usize,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, Failure<E>> {
    let Some(limit) = policy.attempt_timeout else {
        // A stream (a push) reports its own progress while it runs.
        return call.await.map_err(Failure::Failed);
    };
    let said = format!("attempt {attempt} of {ATTEMPTS}");
    match tokio::time::timeout(limit, speaking(what, &said, call)).await {
        Ok(result) => result.map_err(Failure::Failed),
        Err(_) => Err(Failure::TimedOut(limit)),
    }
}

/// Awaits `call`; once it has taken [`SPEAK_AFTER`], one line says that `what` is still
/// awaited (with `detail`, such as the attempt), and the call goes on.
pub async fn speaking<T>(what: &str, detail: &str, call: impl Future<Output = T>) -> T {
    let call = std::pin::pin!(call);
    let mut call = call;
    tokio::select! {
        out = &mut call => return out,
        () = tokio::time::sleep(SPEAK_AFTER) => {}
    }
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!("{detail}, ")
    };
    tracing::warn!(
        "waiting for {what} ({detail}no answer after {}s)",
        SPEAK_AFTER.as_secs()
    );
    call.await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, PartialEq)]
    struct Oops(&'static str);

    impl fmt::Display for Oops {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    const NONE: Policy = Policy {
        attempt_timeout: None,
    };

    /// Runs `run` on a paused clock: the delays pass at once, and in order.
    fn paused<T>(work: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(work)
    }

    #[test]
    fn transient_failures_are_retried_up_to_the_limit() {
        let calls = AtomicUsize::new(0);
        let mut said = Vec::new();
        let gave_up = paused(run(
            NONE,
            "registry r: GET manifest of app:v1",
            || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err::<(), _>(Oops("HTTP 503"))
            },
            |_| true,
            &mut |r| said.push(r.to_string()),
        ))
        .unwrap_err();
        assert_eq!(calls.load(Ordering::Relaxed), ATTEMPTS);
        assert_eq!(gave_up.attempts, ATTEMPTS);
        assert!(gave_up.transient);
        assert_eq!(
            said,
            [
                "registry r: GET manifest of app:v1: HTTP 503; retrying in 0.5s (attempt 2 of 4)",
                "registry r: GET manifest of app:v1: HTTP 503; retrying in 1.0s (attempt 3 of 4)",
                "registry r: GET manifest of app:v1: HTTP 503; retrying in 2.0s (attempt 4 of 4)",
            ]
        );
    }

    #[test]
    fn a_final_failure_stops_at_once_and_a_success_returns() {
        let calls = AtomicUsize::new(0);
        let gave_up = paused(run(
            NONE,
            "x",
            || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err::<(), _>(Oops("unauthorized"))
            },
            |e| e.0 != "unauthorized",
            &mut |_| panic!("no retry"),
        ))
        .unwrap_err();
        assert_eq!((calls.load(Ordering::Relaxed), gave_up.attempts), (1, 1));
        assert!(!gave_up.transient);
        assert_eq!(gave_up.last.to_string(), "unauthorized");

        let calls = AtomicUsize::new(0);
        let got = paused(run(
            NONE,
            "x",
            || async {
                match calls.fetch_add(1, Ordering::Relaxed) {
                    0 => Err(Oops("reset")),
                    n => Ok(n),
                }
            },
            |_| true,
            &mut |_| {},
        ));
        assert_eq!(got.unwrap(), 1);
    }

    #[test]
    fn a_silent_attempt_times_out_and_counts_as_transient() {
        let policy = Policy {
            attempt_timeout: Some(Duration::from_secs(15)),
        };
        assert_eq!(policy.bound(), Some(Duration::from_millis(63_500)));
        let started = std::time::Instant::now();
        let gave_up = paused(async {
            let clock = tokio::time::Instant::now();
            let gave_up = run(
                policy,
                "x",
                std::future::pending::<Result<(), Oops>>,
                |_| false,
                &mut |_| {},
            )
            .await
            .unwrap_err();
            assert_eq!(clock.elapsed(), Duration::from_millis(63_500));
            gave_up
        });
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the clock was paused"
        );
        assert_eq!(gave_up.attempts, ATTEMPTS);
        assert_eq!(gave_up.last.to_string(), "no answer within 15s");
    }

    #[test]
    fn attempts_are_noted_only_when_there_were_several() {
        assert_eq!(attempts_note(1), "");
        assert_eq!(attempts_note(4), " (4 attempts)");
    }
}
