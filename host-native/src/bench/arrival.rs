//! Kernel receive timestamps (`SO_TIMESTAMPNS`) for the fan-out scenarios.
//!
//! The load generator is one thread: when an event reaches 500 readers at
//! once, it reads their sockets one after another, so the last reader's
//! user-space receipt time includes the load generator's own work on the
//! 499 before it. The kernel stamps each segment as it arrives on the
//! reader's socket (on loopback: while the server's send is in progress),
//! so "arrival" latencies measure when the server delivered, independent of
//! how fast the load generator gets round to reading. Linux only; elsewhere
//! [`enable`] fails and the scenarios report no arrival numbers.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Now on the clock of the kernel's stamps (`CLOCK_REALTIME`), as time
/// since the Unix epoch: to compare a stamp with a moment the load
/// generator saw itself.
pub fn since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Asks the kernel to stamp the segments received on `stream`.
#[cfg(target_os = "linux")]
pub fn enable(stream: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Not supported off Linux.
#[cfg(not(target_os = "linux"))]
pub fn enable(_stream: &TcpStream) -> io::Result<()> {
    Err(io::Error::other("receive timestamps need Linux"))
}

/// Reads what is available into `buf`'s spare capacity (at least one byte
/// of it must be free); returns the byte count (0 at EOF) and the kernel's
/// receive time of the newest segment read, as time since the Unix epoch.
///
/// One `recvmsg` per wake-up, like tokio's own reads: a read that leaves
/// spare room has drained the socket, so its readiness is cleared at once
/// instead of by a second call that would block.
#[cfg(target_os = "linux")]
pub async fn read(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<(usize, Option<Duration>)> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    loop {
        stream.readable().await?;
        let room = buf.capacity() - buf.len();
        let mut got = None;
        let tried = stream.try_io(Interest::READABLE, || {
            let (n, at) = recv_stamped(fd, buf)?;
            got = Some((n, at));
            if n > 0 && n < room {
                // Drained: tokio clears readiness on WouldBlock (unless an
                // event arrived since it was observed).
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        if let Some(got) = got {
            return Ok(got);
        }
        match tried {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
            Ok(()) => unreachable!("a successful read sets `got`"),
        }
    }
}

/// One non-blocking `recvmsg` into `buf`'s spare capacity, with the
/// `SCM_TIMESTAMPNS` message picked out of the ancillary data.
#[cfg(target_os = "linux")]
fn recv_stamped(
    fd: std::os::fd::RawFd,
    buf: &mut BytesMut,
) -> io::Result<(usize, Option<Duration>)> {
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    // Room for one SCM_TIMESTAMPNS message, 8-byte aligned.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is a valid empty header.
    #[allow(unsafe_code)]
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `iov` points at `spare`, writable for `iov_len` bytes, and
    // `control` outlives the call; both stay borrowed until it returns.
    #[allow(unsafe_code)]
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    let mut stamp = None;
    // SAFETY: the kernel filled `msg_control` with well-formed messages
    // (`msg_controllen` bytes); the CMSG macros walk them, and a timestamp
    // message carries one `timespec`. The kernel initialized the first `n`
    // spare bytes.
    #[allow(unsafe_code)]
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        buf.set_len(buf.len() + n);
    }
    Ok((n, stamp))
}

/// Not supported off Linux ([`enable`] fails first).
#[cfg(not(target_os = "linux"))]
pub async fn read(
    _stream: &TcpStream,
    _buf: &mut BytesMut,
) -> io::Result<(usize, Option<Duration>)> {
    Err(io::Error::other("receive timestamps need Linux"))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn reads_are_stamped_with_their_arrival() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        enable(&client).unwrap();
        let now = since_epoch;

        // The kernel turns receive stamping on for the whole system a moment
        // after the first socket asks (a deferred static-key switch), so the
        // first segments may come unstamped: send until one is stamped. (The
        // fan-out scenarios connect their readers well before the first event.)
        let mut buf = BytesMut::with_capacity(4096);
        let mut stamped = None;
        for _ in 0..200 {
            let before = now();
            server.write_all(b"event").await.unwrap();
            buf.clear();
            let (n, at) = read(&client, &mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"event");
            if let Some(at) = at {
                stamped = Some((before, at, now()));
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let (before, at, after) = stamped.expect("a kernel receive timestamp within 2 s");
        assert!(
            before <= at && at <= after,
            "{before:?} <= {at:?} <= {after:?}"
        );

        // A drained socket waits for the next segment; then EOF reads 0.
        server.write_all(b"two").await.unwrap();
        let (n, at) = read(&client, &mut buf).await.unwrap();
        assert_eq!((n, &buf[..]), (3, &b"eventtwo"[..]));
        assert!(at.is_some());
        drop(server);
        let (n, _) = read(&client, &mut buf).await.unwrap();
        assert_eq!(n, 0);
    }
}
