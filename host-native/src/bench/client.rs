//! A small HTTP/1.1 client over one keep-alive `TcpStream`: requests are
//! written in one `write_all`, responses parsed with `httparse`; bodies are
//! `Content-Length`, chunked, or read to EOF. Lean on purpose: the load
//! generator shares the machine's cores with the server it measures.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::arrival;

/// The parts of a response head the benchmark looks at.
#[derive(Debug, Default, Clone)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// `Stream-Next-Offset`.
    pub next_offset: Option<String>,
    /// `Stream-Up-To-Date: true` was present.
    pub up_to_date: bool,
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
}

/// One keep-alive connection; reconnects when the server closed it.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    host: String,
    /// Set while a response body is being read.
    body: Option<BodyState>,
    /// The server asked to close the connection after this response.
    close_after: bool,
    /// Kernel receive timestamps are on (see `arrival.rs`).
    stamped: bool,
    /// The kernel's receive time of the newest segment read (stamped only).
    arrival: Option<Duration>,
}

enum BodyState {
    Length(usize),
    Chunked(Chunked),
    UntilEof,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Conn {
    /// Connects (TCP_NODELAY on).
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let mut conn = Conn {
            addr,
            stream: None,
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: Vec::with_capacity(1024),
            host: addr.to_string(),
            body: None,
            close_after: false,
            stamped: false,
            arrival: None,
        };
        conn.ensure_connected().await?;
        Ok(conn)
    }

    async fn ensure_connected(&mut self) -> io::Result<&mut TcpStream> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            if self.stamped {
                arrival::enable(&s)?;
            }
            self.rbuf.clear();
            self.stream = Some(s);
        }
        Ok(self.stream.as_mut().expect("connected"))
    }

    /// Turns on kernel receive timestamps for this connection (and its
    /// reconnections); [`Conn::arrival`] then reports them.
    pub fn stamp_arrivals(&mut self) -> io::Result<()> {
        if let Some(s) = self.stream.as_ref() {
            arrival::enable(s)?;
        }
        self.stamped = true;
        Ok(())
    }

    /// When the kernel received the newest bytes read so far (time since
    /// the Unix epoch); `None` unless [`Conn::stamp_arrivals`] is on.
    pub fn arrival(&self) -> Option<Duration> {
        self.arrival
    }

    /// Sends a request and reads the whole response, dropping its body.
    pub async fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Head> {
        let mut out = Vec::new();
        self.request_into(method, target, headers, body, &mut out)
            .await
    }

    /// Sends a request; appends the response body to `out`.
    pub async fn request_into(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<Head> {
        let result = async {
            let head = self.send_head(method, target, headers, body).await?;
            while !self.read_body_some(out, usize::MAX).await? {}
            Ok(head)
        }
        .await;
        if result.is_err() {
            self.stream = None;
            self.body = None;
        }
        result
    }

    /// Sends a request and reads the response head only; the body is then
    /// read with [`Conn::read_body_some`] (used for SSE).
    pub async fn send_head(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Head> {
        if self.body.is_some() {
            // A previous body was not read to its end: start afresh.
            self.stream = None;
            self.body = None;
        }
        self.wbuf.clear();
        let w = &mut self.wbuf;
        w.extend_from_slice(method.as_bytes());
        w.push(b' ');
        w.extend_from_slice(target.as_bytes());
        w.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        w.extend_from_slice(self.host.as_bytes());
        w.extend_from_slice(b"\r\n");
        for (n, v) in headers {
            w.extend_from_slice(n.as_bytes());
            w.extend_from_slice(b": ");
            w.extend_from_slice(v.as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            w.extend_from_slice(b"Content-Length: ");
            w.extend_from_slice(body.len().to_string().as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b"\r\n");
        if body.len() <= 16 * 1024 {
            w.extend_from_slice(body);
        }
        let wbuf = std::mem::take(&mut self.wbuf);
        let write = async {
            let stream = self.ensure_connected().await?;
            stream.write_all(&wbuf).await?;
            if body.len() > 16 * 1024 {
                stream.write_all(body).await?;
            }
            io::Result::Ok(())
        }
        .await;
        self.wbuf = wbuf;
        if let Err(e) = write {
            self.stream = None;
            return Err(e);
        }
        loop {
            let head = match self.read_head().await {
                Ok(h) => h,
                Err(e) => {
                    self.stream = None;
                    return Err(e);
                }
            };
            if head.status == 100 {
                continue;
            }
            let no_body = method == "HEAD" || head.status == 204 || head.status == 304;
            self.body = if no_body {
                Some(BodyState::Length(0))
            } else if head.chunked {
                Some(BodyState::Chunked(Chunked::default()))
            } else if let Some(n) = head.content_length {
                Some(BodyState::Length(n))
            } else {
                Some(BodyState::UntilEof)
            };
            self.close_after = head.close;
            return Ok(head);
        }
    }

    async fn read_more(&mut self) -> io::Result<usize> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| invalid("not connected"))?;
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(16 * 1024);
        }
        if self.stamped {
            let (n, at) = arrival::read(stream, &mut self.rbuf).await?;
            if at.is_some() {
                self.arrival = at;
            }
            return Ok(n);
        }
        stream.read_buf(&mut self.rbuf).await
    }

    async fn read_head(&mut self) -> io::Result<Head> {
        loop {
            if !self.rbuf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut res = httparse::Response::new(&mut headers);
                match res.parse(&self.rbuf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let mut head = Head {
                            status: res.code.unwrap_or(0),
                            ..Head::default()
                        };
                        let http10 = res.version == Some(0);
                        head.close = http10;
                        for h in res.headers.iter() {
                            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                            let name = h.name;
                            if name.eq_ignore_ascii_case("stream-next-offset") {
                                head.next_offset = Some(v.to_string());
                            } else if name.eq_ignore_ascii_case("stream-up-to-date") {
                                head.up_to_date = v.eq_ignore_ascii_case("true");
                            } else if name.eq_ignore_ascii_case("content-length") {
                                head.content_length =
                                    Some(v.parse().map_err(|_| invalid("bad content-length"))?);
                            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                                head.chunked = v.to_ascii_lowercase().contains("chunked");
                            } else if name.eq_ignore_ascii_case("connection") {
                                let v = v.to_ascii_lowercase();
                                if v.contains("close") {
                                    head.close = true;
                                } else if v.contains("keep-alive") {
                                    head.close = false;
                                }
                            }
                        }
                        self.rbuf.advance(n);
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => return Err(invalid(format!("bad response head: {e}"))),
                }
            }
            if self.read_more().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                ));
            }
        }
    }

    /// Reads body bytes into `out` (at most about `max` more); true once the
    /// body has ended. Waits for data when none is buffered.
    pub async fn read_body_some(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<bool> {
        loop {
            let done = match self.body.as_mut() {
                None => return Ok(true),
                Some(BodyState::Length(rest)) => {
                    let take = (*rest).min(self.rbuf.len()).min(max);
                    out.extend_from_slice(&self.rbuf[..take]);
                    self.rbuf.advance(take);
                    *rest -= take;
                    if *rest == 0 {
                        true
                    } else if take > 0 {
                        return Ok(false);
                    } else if self.stamped {
                        // Through the buffer, so the read is stamped.
                        if self.read_more().await? == 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "connection closed inside a body",
                            ));
                        }
                        continue;
                    } else {
                        // Read straight into `out` for large bodies.
                        let want = (*rest).min(max).min(4 << 20);
                        let stream = self
                            .stream
                            .as_mut()
                            .ok_or_else(|| invalid("not connected"))?;
                        out.reserve(want);
                        let n = stream.read_buf(&mut (&mut *out).limit(want)).await?;
                        if n == 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "connection closed inside a body",
                            ));
                        }
                        if let Some(BodyState::Length(rest)) = self.body.as_mut() {
                            *rest -= n;
                            if *rest == 0 {
                                self.end_body();
                                return Ok(true);
                            }
                        }
                        return Ok(false);
                    }
                }
                Some(BodyState::Chunked(dec)) => {
                    let before = out.len();
                    let done = dec.feed(&mut self.rbuf, out)?;
                    if !done && out.len() == before {
                        if self.read_more().await? == 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "connection closed inside a chunked body",
                            ));
                        }
                        continue;
                    }
                    if !done {
                        return Ok(false);
                    }
                    true
                }
                Some(BodyState::UntilEof) => {
                    out.extend_from_slice(&self.rbuf);
                    self.rbuf.clear();
                    if self.read_more().await? == 0 {
                        self.stream = None;
                        true
                    } else {
                        out.extend_from_slice(&self.rbuf);
                        self.rbuf.clear();
                        return Ok(false);
                    }
                }
            };
            if done {
                self.end_body();
                return Ok(true);
            }
        }
    }

    fn end_body(&mut self) {
        self.body = None;
        if self.close_after {
            self.stream = None;
            self.rbuf.clear();
        }
    }

    /// Forgets the connection (the next request reconnects).
    pub fn reset(&mut self) {
        self.stream = None;
        self.body = None;
        self.rbuf.clear();
    }
}

/// Incremental decoder of `Transfer-Encoding: chunked`.
#[derive(Default, Debug)]
pub struct Chunked {
    state: ChunkState,
}

#[derive(Default, Debug)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Trailer,
}

impl Chunked {
    /// Consumes what it can of `input`, appending payload to `out`; true
    /// once the last chunk and the trailer have been read.
    pub fn feed(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> io::Result<bool> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(eol) = find_crlf(input) else {
                        return Ok(false);
                    };
                    let line = std::str::from_utf8(&input[..eol])
                        .map_err(|_| invalid("bad chunk size"))?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size =
                        usize::from_str_radix(hex, 16).map_err(|_| invalid("bad chunk size"))?;
                    input.advance(eol + 2);
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(rest) => {
                    if input.is_empty() {
                        return Ok(false);
                    }
                    let take = rest.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input.advance(take);
                    self.state = if take == rest {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(rest - take)
                    };
                }
                ChunkState::DataEnd => {
                    if input.len() < 2 {
                        return Ok(false);
                    }
                    if &input[..2] != b"\r\n" {
                        return Err(invalid("chunk not followed by CRLF"));
                    }
                    input.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    let Some(eol) = find_crlf(input) else {
                        return Ok(false);
                    };
                    input.advance(eol + 2);
                    if eol == 0 {
                        self.state = ChunkState::Size;
                        return Ok(true);
                    }
                }
            }
        }
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_decodes_across_splits() {
        let wire = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut dec = Chunked::default();
            let mut out = Vec::new();
            let mut a = BytesMut::from(&wire[..split]);
            let mut done = dec.feed(&mut a, &mut out).unwrap();
            let mut b = a;
            b.extend_from_slice(&wire[split..]);
            done |= dec.feed(&mut b, &mut out).unwrap();
            assert!(done, "split {split}");
            assert_eq!(out, b"hello world");
        }
    }
}
