//! The baseline: a bare HTTP/1.1 server on the server's own stack (tokio's
//! multi-threaded runtime + hyper), reading each request body and answering
//! `204 No Content` to everything. Its throughput is the ceiling the
//! benchmark reports every other throughput against.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

async fn answer(req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    // Read the body like a real server would before answering.
    let _ = req.into_body().collect().await;
    let mut res = Response::new(Empty::new());
    *res.status_mut() = StatusCode::NO_CONTENT;
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
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    })
}
