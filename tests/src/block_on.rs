//! Running scenarios against targets whose futures never wait.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls `fut` to completion on the current thread. Meant for targets that
/// answer synchronously, like [`crate::CoreTarget`]: their futures are ready
/// on the first poll, so a pending future is a bug and panics.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a synchronous target's future returned Pending"),
    }
}
