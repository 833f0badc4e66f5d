//! The baseline: a bare HTTP/1.1 server on the server's own stack (tokio's
//! multi-threaded runtime + hyper), reading each request body and answering
//! `204 No Content` to everything. Its throughput is the ceiling the
//! benchmark reports every other throughput against.
//!
//! It is also the floor of the SSE fan-out: a `GET …?…live=sse` stays open
//! as a chunked `text/event-stream` body, and every `POST` body is framed
//! once as an `event: data` and handed to each open body (`PUT` answers
//! `201`, so the scenario can "create" its stream). No storage, offsets or
//! control events: what is left is the cost of waking each reader's task
//! and writing its socket, on the same stack as `durable-streams-server`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Either, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// The open SSE bodies: each gets every event framed after it opened.
type Readers = Arc<Mutex<Vec<UnboundedSender<Bytes>>>>;

/// Appends answer with an empty body, as before the fan-out floor existed
/// (no box per answer: the baseline's throughput is the ratios' divisor).
type Body = Either<Empty<Bytes>, BoxBody<Bytes, Infallible>>;

async fn answer(req: Request<Incoming>, readers: Readers) -> Result<Response<Body>, Infallible> {
    let live = req.uri().query().is_some_and(|q| q.contains("live=sse"));
    let (method, body) = (req.method().clone(), req.into_body());
    if method == Method::GET && live {
        let (tx, rx) = unbounded_channel();
        // A first event, so the reader knows the body is open (the real
        // server's first control event).
        let _ = tx.send(Bytes::from_static(b": open\n\n"));
        readers.lock().expect("readers").push(tx);
        let events = futures_util::stream::unfold(rx, |mut rx| async move {
            let event = rx.recv().await?;
            Some((Ok::<_, Infallible>(Frame::data(event)), rx))
        });
        let mut res = Response::new(Either::Right(StreamBody::new(events).boxed()));
        res.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/event-stream"),
        );
        return Ok(res);
    }
    // Read the body like a real server would before answering.
    let data = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let status = match method {
        Method::PUT => StatusCode::CREATED,
        Method::POST => {
            let mut event = BytesMut::with_capacity(data.len() + 24);
            event.extend_from_slice(b"event: data\ndata:[");
            event.extend_from_slice(&data);
            event.extend_from_slice(b"]\n\n");
            let event = event.freeze();
            readers
                .lock()
                .expect("readers")
                .retain(|tx| tx.send(event.clone()).is_ok());
            StatusCode::NO_CONTENT
        }
        _ => StatusCode::NO_CONTENT,
    };
    let mut res = Response::new(Either::Left(Empty::new()));
    *res.status_mut() = status;
    Ok(res)
}

/// Serves until the process is killed. `threads` = 0 uses tokio's default
/// (one worker per core), like `durable-streams-server`.
pub fn serve(bind: SocketAddr, threads: usize) -> std::io::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if threads > 0 {
        rt.worker_threads(threads);
    }
    rt.build()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        println!("bare hyper listening on http://{}", listener.local_addr()?);
        let readers = Readers::default();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let readers = Arc::clone(&readers);
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, Arc::clone(&readers)));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
