//! A plain-TCP connection's socket, shared between hyper, which owns it and
//! serves the connection, and the SSE fan-out, which writes an append's
//! event straight into a following body's socket instead of waking the
//! body's task to have hyper write it (PROTOCOL §5.8 events, framed as
//! HTTP/1.1 chunks of the response body).
//!
//! Why: an SSE fan-out to 500 readers was 500 task wake-ups, each a turn of
//! tokio's scheduler, hyper's dispatcher and the body's poll for one
//! `writev`. Written straight from a few fan-out tasks, the same events
//! cost the `writev`s and little else (see the issue 8 notes).
//!
//! Contracts:
//! - Direct writes go only to a body that is *open*: its SSE body said it
//!   waits at the stream's tail ([`LiveSocket::arm`], when it returned
//!   `Pending` to hyper) and hyper has since flushed everything it was given
//!   (its `poll_flush` found nothing left). Hyper writes nothing else while
//!   a response body is in progress, so an open body's socket has no writer
//!   but the fan-out. The body closes it ([`LiveSocket::disarm`]) before it
//!   hands hyper a frame or ends; the state's lock orders that after any
//!   direct write in progress.
//! - A direct write is one whole chunk (`size CRLF data CRLF`), the framing
//!   hyper gives each body frame of an HTTP/1.1 response of unknown length,
//!   so the body stays a valid chunked body. Only bodies of HTTP/1.1 `GET`s
//!   on plain TCP are given a socket (not TLS, not HTTP/2).
//! - What a direct write leaves unsent (a full socket buffer) is the
//!   *backlog*: the body is closed to direct writes and its task is woken;
//!   hyper's next write or flush on the connection sends the backlog first.
//!   Stalls are bounded by the connection's send timeout like any write.
//! - The descriptor is written only under the state's lock while `closed` is
//!   false; [`SocketIo`] sets `closed` before its stream closes it.
//! - Bodies are numbered: a fan-out task still holding the follower of an
//!   ended body cannot write into the next response on the connection.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The shared half: the descriptor and the direct-write state.
#[derive(Debug)]
pub struct LiveSocket {
    fd: RawFd,
    state: Mutex<State>,
    /// A backlog waits (set and cleared under the lock; read without it on
    /// every write hyper makes).
    backlog_waiting: AtomicBool,
    /// `armed`, readable without the lock: hyper's flush at the end of
    /// every turn of every connection looks at it. Changed only by the
    /// connection's own task (its bodies), which is also the one flushing.
    armed_hint: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// The stream was dropped: the descriptor may be closed or reused.
    closed: bool,
    /// The number of the current (or last) SSE body on the connection.
    body: u64,
    /// That body waits at the tail (it returned `Pending` to hyper).
    armed: bool,
    /// Armed, and hyper has flushed all it wrote since: direct writes go.
    open: bool,
    /// A direct write failed (the client is gone): the body ends.
    failed: bool,
    /// Bytes a direct write left unsent; hyper's next write sends them first.
    backlog: Vec<u8>,
}

/// What [`LiveSocket::write`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Wrote {
    /// The whole chunk is in the socket.
    Sent,
    /// Nothing was written (the body is not open, or had nothing to send):
    /// deliver the event through the body's task.
    Refused,
    /// Written in part, or failed: wake the body's task (it sends the
    /// backlog, or ends).
    WakeBody,
}

impl LiveSocket {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("live socket lock")
    }

    /// Starts a new SSE body on the connection; returns its number. Nothing
    /// is written directly until the body arms.
    pub fn begin_body(&self) -> u64 {
        let mut st = self.lock();
        st.body += 1;
        st.armed = false;
        self.armed_hint.store(false, Ordering::Relaxed);
        st.open = false;
        st.failed = false;
        st.body
    }

    /// Body `body` waits at the tail: once hyper has flushed, events may be
    /// written to it directly.
    pub fn arm(&self, body: u64) {
        let mut st = self.lock();
        if st.body == body {
            st.armed = true;
            self.armed_hint.store(true, Ordering::Relaxed);
        }
    }

    /// Body `body` is about to hand hyper a frame, or ends: no direct write
    /// until it arms again. Waits for a direct write in progress.
    pub fn disarm(&self, body: u64) {
        let mut st = self.lock();
        if st.body == body {
            st.armed = false;
            st.open = false;
            self.armed_hint.store(false, Ordering::Relaxed);
        }
    }

    /// A direct write to body `body` failed: the body should end.
    pub fn failed(&self, body: u64) -> bool {
        let st = self.lock();
        st.body == body && st.failed
    }

    /// Writes what `make` returns, as one chunk, if body `body` is open;
    /// `make` runs only then (under the lock), so the caller's session
    /// advances only for bytes that are written or queued.
    pub fn write(&self, body: u64, make: impl FnOnce() -> Option<Vec<u8>>) -> Wrote {
        let mut st = self.lock();
        if st.closed || st.body != body || !st.open {
            return Wrote::Refused;
        }
        let Some(data) = make().filter(|d| !d.is_empty()) else {
            return Wrote::Refused;
        };
        let chunk = chunk(&data);
        match send(self.fd, &chunk) {
            Ok(n) if n == chunk.len() => Wrote::Sent,
            Ok(n) => {
                st.open = false;
                st.backlog.extend_from_slice(&chunk[n..]);
                self.backlog_waiting.store(true, Ordering::Release);
                Wrote::WakeBody
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                st.open = false;
                st.backlog.extend_from_slice(&chunk);
                self.backlog_waiting.store(true, Ordering::Release);
                Wrote::WakeBody
            }
            Err(_) => {
                st.open = false;
                st.failed = true;
                Wrote::WakeBody
            }
        }
    }
}

/// `data` framed as one HTTP/1.1 chunk.
fn chunk(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(data.len() + 20);
    // Into the vector itself: no string allocated per write.
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// One non-blocking `send` (no `SIGPIPE` on a closed peer).
fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the call;
    // `fd` is open: callers hold the state's lock with `closed` false, and
    // the stream that owns the descriptor sets `closed` under that lock
    // before it closes it.
    #[allow(unsafe_code)]
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The connection's IO as hyper sees it: the stream, with the backlog of
/// direct writes sent before anything hyper writes, and the "flushed"
/// signal that opens an armed body.
#[derive(Debug)]
pub struct SocketIo {
    stream: TcpStream,
    live: Arc<LiveSocket>,
}

impl SocketIo {
    /// Wraps an accepted stream.
    pub fn new(stream: TcpStream) -> SocketIo {
        let live = Arc::new(LiveSocket {
            fd: stream.as_raw_fd(),
            state: Mutex::new(State::default()),
            backlog_waiting: AtomicBool::new(false),
            armed_hint: AtomicBool::new(false),
        });
        SocketIo { stream, live }
    }

    /// The shared half, for the connection's SSE bodies.
    pub fn live(&self) -> Arc<LiveSocket> {
        Arc::clone(&self.live)
    }

    /// Sends the backlog, if any.
    fn poll_backlog(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.live.backlog_waiting.load(Ordering::Acquire) {
            ready!(self.stream.poll_write_ready(cx))?;
            let mut st = self.live.lock();
            if st.backlog.is_empty() {
                self.live.backlog_waiting.store(false, Ordering::Release);
                break;
            }
            match self.stream.try_write(&st.backlog) {
                Ok(n) => {
                    st.backlog.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for SocketIo {
    fn drop(&mut self) {
        // Before the stream's own drop closes the descriptor.
        self.live.lock().closed = true;
    }
}

impl AsyncRead for SocketIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SocketIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_backlog(cx))?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_backlog(cx))?;
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    /// Hyper calls this at the end of every turn, once its buffer is
    /// written: an armed body opens here.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_backlog(cx))?;
        ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
        if self.live.armed_hint.load(Ordering::Relaxed) {
            let mut st = self.live.lock();
            if st.armed && st.backlog.is_empty() && !st.failed {
                st.open = true;
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_backlog(cx))?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected pair: the server side wrapped, the client side plain.
    async fn pair() -> (SocketIo, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (SocketIo::new(server), client)
    }

    fn data(text: &str) -> impl FnOnce() -> Option<Vec<u8>> + '_ {
        move || Some(text.as_bytes().to_vec())
    }

    async fn flush(io: &mut SocketIo) {
        poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx))
            .await
            .unwrap();
    }

    async fn read_exactly(client: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        client.read_exact(&mut buf).await.unwrap();
        buf
    }

    #[tokio::test]
    async fn a_body_takes_direct_chunks_only_while_armed_and_flushed() {
        let (mut io, mut client) = pair().await;
        let live = io.live();
        let body = live.begin_body();
        assert_eq!(live.write(body, data("early")), Wrote::Refused);
        live.arm(body);
        assert_eq!(
            live.write(body, data("before the flush")),
            Wrote::Refused,
            "hyper may still hold bytes"
        );
        flush(&mut io).await;
        let mut made = false;
        assert_eq!(
            live.write(body, || {
                made = true;
                None
            }),
            Wrote::Refused,
            "nothing to send"
        );
        assert!(made, "asked once open");
        assert_eq!(live.write(body, data("hello")), Wrote::Sent);
        assert_eq!(live.write(body + 1, data("stale")), Wrote::Refused);
        live.disarm(body);
        assert_eq!(live.write(body, data("after")), Wrote::Refused);
        // Hyper's own bytes follow the direct chunk on the wire.
        io.write_all(b"0\r\n\r\n").await.unwrap();
        assert_eq!(
            read_exactly(&mut client, 15).await,
            b"5\r\nhello\r\n0\r\n\r\n"
        );

        // The next body on the connection starts closed, and so does one
        // whose stream is gone.
        let next = live.begin_body();
        assert_ne!(next, body);
        assert_eq!(live.write(next, data("x")), Wrote::Refused);
        live.arm(next);
        flush(&mut io).await;
        drop(io);
        assert_eq!(live.write(next, data("x")), Wrote::Refused);
    }

    #[tokio::test]
    async fn a_full_socket_leaves_a_backlog_that_goes_before_hyper_bytes() {
        let (mut io, mut client) = pair().await;
        let live = io.live();
        let body = live.begin_body();
        live.arm(body);
        flush(&mut io).await;
        // The client reads nothing: chunks fill the socket until one is
        // left (in part) in the backlog.
        let event = "e".repeat(64 << 10);
        let mut sent = 0usize;
        loop {
            match live.write(body, data(&event)) {
                Wrote::Sent => sent += 1,
                Wrote::WakeBody => break,
                Wrote::Refused => panic!("refused while open"),
            }
            assert!(sent < 10_000, "the socket never filled");
        }
        assert_eq!(
            live.write(body, data("later")),
            Wrote::Refused,
            "closed while a backlog waits"
        );
        let one = chunk(event.as_bytes());
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        // Hyper's next bytes: the backlog goes first.
        io.write_all(b"0\r\n\r\n").await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        let all = reader.await.unwrap();
        let mut expected = one.repeat(sent + 1);
        expected.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(all.len(), expected.len());
        assert!(all == expected, "whole chunks, in order, then hyper's");
    }

    #[tokio::test]
    async fn a_write_to_a_gone_client_fails_the_body() {
        let (mut io, client) = pair().await;
        let live = io.live();
        let body = live.begin_body();
        live.arm(body);
        flush(&mut io).await;
        drop(client);
        let mut outcome = Wrote::Sent;
        // The first write may still be accepted (the peer's reset comes back
        // with it); a later one fails.
        for _ in 0..100 {
            outcome = live.write(body, data("gone?"));
            if outcome != Wrote::Sent {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(outcome, Wrote::WakeBody);
        assert!(live.failed(body));
        flush(&mut io).await;
        assert_eq!(
            live.write(body, data("x")),
            Wrote::Refused,
            "a failed body does not open again"
        );
    }
}
