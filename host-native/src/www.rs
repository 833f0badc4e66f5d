//! The offline demo (`www/dist/`, built by `scripts/build-www.sh`) served
//! as static files at `/`, next to the stream root: `GET` and `HEAD` of any
//! path that no other route takes. The demo runs its streams in the browser
//! (a Service Worker); this only hands out its files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;

/// Where the built demo is looked for when `--www` is not given (relative
/// to the working directory, so `cargo run` from the repository finds it).
pub const DEFAULT_DIR: &str = "www/dist";

/// `app` with the files of `dir` as its fallback for unrouted paths.
pub fn with_static_files(app: Router, dir: PathBuf) -> Router {
    let dir = Arc::new(dir);
    app.fallback(move |req: Request| {
        let dir = Arc::clone(&dir);
        async move { serve(&dir, req).await }
    })
}

/// Answers `req` with a file of `dir` (`index.html` for a folder).
pub async fn serve(dir: &Path, req: Request) -> Response {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    let Some(rel) = relative_path(req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let file = dir.join(rel);
    let read = tokio::task::spawn_blocking(move || {
        let file = if file.is_dir() {
            file.join("index.html")
        } else {
            file
        };
        std::fs::read(&file).map(|bytes| (content_type(&file), bytes))
    })
    .await;
    let Ok(Ok((kind, bytes))) = read else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let len = bytes.len();
    let mut res = Response::new(if head {
        Body::empty()
    } else {
        Body::from(bytes)
    });
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    // Revalidate every time: a rebuilt demo is picked up on the next load
    // (its Service Worker keeps its own offline copy).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// The percent-decoded path below the folder, or `None` for anything that
/// could leave it or name a hidden file (`..`, `.x`, backslashes, NUL).
fn relative_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path)?;
    let mut out = PathBuf::new();
    for segment in decoded.split('/') {
        if segment.is_empty() {
            continue;
        }
        if segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return None;
        }
        out.push(segment);
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `Content-Type` of a file, by its extension.
fn content_type(file: &Path) -> &'static str {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn site() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("index.html"), "<!doctype html>demo").unwrap();
        std::fs::write(dir.path().join("sw.js"), "// worker").unwrap();
        std::fs::write(dir.path().join("pkg/x_bg.wasm"), b"\0asm").unwrap();
        std::fs::write(dir.path().join(".secret"), "no").unwrap();
        dir
    }

    async fn get(app: &Router, method: &str, path: &str) -> (StatusCode, String, Vec<u8>) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let kind = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, kind, body)
    }

    fn app(dir: &Path) -> Router {
        let streams = Router::new().route(
            "/v1/stream/{*path}",
            axum::routing::any(|| async { "stream route" }),
        );
        with_static_files(streams, dir.to_path_buf())
    }

    #[tokio::test]
    async fn serves_files_with_their_content_types() {
        let dir = site();
        let app = app(dir.path());
        let (s, kind, body) = get(&app, "GET", "/").await;
        assert_eq!(
            (s, kind.as_str()),
            (StatusCode::OK, "text/html; charset=utf-8")
        );
        assert_eq!(body, b"<!doctype html>demo");
        let (s, kind, _) = get(&app, "GET", "/sw.js").await;
        assert_eq!(
            (s, kind.as_str()),
            (StatusCode::OK, "text/javascript; charset=utf-8")
        );
        let (s, kind, body) = get(&app, "GET", "/pkg/x%5Fbg.wasm").await;
        assert_eq!((s, kind.as_str()), (StatusCode::OK, "application/wasm"));
        assert_eq!(body, b"\0asm");
        let (s, _, body) = get(&app, "HEAD", "/index.html").await;
        assert_eq!((s, body.len()), (StatusCode::OK, 0));
    }

    #[tokio::test]
    async fn stream_routes_win_and_nothing_leaves_the_folder() {
        let dir = site();
        let app = app(dir.path());
        let (_, _, body) = get(&app, "GET", "/v1/stream/chat").await;
        assert_eq!(body, b"stream route");
        for path in [
            "/../etc/passwd",
            "/%2e%2e/x",
            "/.secret",
            "/pkg/..%2F..%2Fx",
            "/missing.js",
            "/%zz",
        ] {
            assert_eq!(
                get(&app, "GET", path).await.0,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        assert_eq!(
            get(&app, "POST", "/index.html").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
