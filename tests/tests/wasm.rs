//! Every scenario against the wasm host (`ds_wasm::LocalHost`, the cycle the
//! npm package's JavaScript drives), compiled to `wasm32-unknown-unknown` and
//! run by `wasm-bindgen-test-runner`: in Node by default, in headless
//! Chromium with `WASM_BINDGEN_USE_BROWSER=1` (scripts/test.sh runs both).
//!
//! The target plays the JavaScript side: it keeps parked long-polls and SSE
//! bodies by handle, wakes them on the paths `take_advanced` reports, and
//! fires deadlines in virtual time. The wasm host keeps streams in memory
//! only, so `restart` returns `false`.

#![cfg(target_arch = "wasm32")]

use ds_conformance::dsl::summarize;
use ds_conformance::{suite_config, LiveRead, Reply, Target, START};
use ds_core::{Request, UnixMillis};
use ds_wasm::local_host::{Answer, Handle, LocalHost, ReplyBody};
use wasm_bindgen_test::wasm_bindgen_test;

/// A response in progress.
enum Live {
    Done(Option<Reply>),
    Parked {
        request: String,
        handle: Handle,
        path: String,
        deadline: UnixMillis,
    },
    Streaming {
        head: Reply,
        handle: Handle,
        path: String,
        wake_at: UnixMillis,
    },
}

struct WasmTarget {
    host: LocalHost,
    now: UnixMillis,
    reads: Vec<Live>,
    /// Paths reported advanced and not yet delivered to parked readers.
    woken: Vec<String>,
}

impl WasmTarget {
    fn new() -> WasmTarget {
        let host = LocalHost::open(suite_config(), START, 1).expect("a memory host opens");
        WasmTarget {
            host,
            now: START,
            reads: Vec::new(),
            woken: Vec::new(),
        }
    }

    fn head(request: String, status: u16, headers: Vec<(&'static str, String)>) -> Reply {
        Reply {
            request,
            status,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
            body: Vec::new(),
        }
    }

    fn live(&self, request: String, answer: Answer, path: &str) -> Live {
        match answer {
            Answer::Reply(r) => {
                let mut head = Self::head(request, r.status, r.headers);
                match r.body {
                    ReplyBody::Empty => Live::Done(Some(head)),
                    ReplyBody::Bytes(b) => {
                        head.body = b;
                        Live::Done(Some(head))
                    }
                    ReplyBody::Sse(handle) => Live::Streaming {
                        head,
                        handle,
                        path: path.to_string(),
                        wake_at: self.now,
                    },
                }
            }
            Answer::Wait {
                handle,
                path,
                deadline,
            } => Live::Parked {
                request,
                handle,
                path,
                deadline,
            },
        }
    }

    fn begin(&mut self, req: Request) -> usize {
        let request = summarize(&req);
        let path = req.path.clone();
        let answer = self.host.handle(req, self.now);
        let live = self.live(request, answer, &path);
        self.reads.push(live);
        self.settle();
        self.reads.len() - 1
    }

    /// Runs everything due now: expiry, woken or timed-out readers.
    fn settle(&mut self) {
        loop {
            if self.host.next_timeout().is_some_and(|at| at <= self.now) {
                self.host.on_timeout(self.now);
            }
            self.woken.extend(self.host.take_advanced());
            let woken = std::mem::take(&mut self.woken);
            let now = self.now;
            let mut ran = false;
            for i in 0..self.reads.len() {
                let due = match &self.reads[i] {
                    Live::Done(_) => false,
                    Live::Parked { path, deadline, .. } => woken.contains(path) || *deadline <= now,
                    Live::Streaming { path, wake_at, .. } => {
                        woken.contains(path) || *wake_at <= now
                    }
                };
                if !due {
                    continue;
                }
                ran = true;
                let current = std::mem::replace(&mut self.reads[i], Live::Done(None));
                self.reads[i] = match current {
                    Live::Parked {
                        request,
                        handle,
                        path,
                        ..
                    } => {
                        let answer = self
                            .host
                            .resume(handle, now)
                            .expect("a parked poll resumes");
                        self.live(request, answer, &path)
                    }
                    Live::Streaming {
                        mut head,
                        handle,
                        path,
                        ..
                    } => {
                        let step = self.host.sse_poll(handle, now).expect("a live body polls");
                        head.body.extend_from_slice(&step.bytes);
                        match step.wake_at {
                            None => Live::Done(Some(head)),
                            Some(wake_at) => Live::Streaming {
                                head,
                                handle,
                                path,
                                wake_at,
                            },
                        }
                    }
                    done => done,
                };
            }
            self.woken.extend(self.host.take_advanced());
            if !ran && self.woken.is_empty() {
                return;
            }
        }
    }

    fn next_deadline(&self) -> Option<UnixMillis> {
        let reads = self.reads.iter().filter_map(|l| match l {
            Live::Done(_) => None,
            Live::Parked { deadline, .. } => Some(*deadline),
            Live::Streaming { wake_at, .. } => Some(*wake_at),
        });
        reads.chain(self.host.next_timeout()).min()
    }

    fn run_until(&mut self, to: UnixMillis) {
        while let Some(at) = self.next_deadline().filter(|at| *at <= to) {
            self.now = self.now.max(at);
            self.settle();
            if self.next_deadline() == Some(at) && at <= self.now {
                // Due work that produced nothing new: step past it.
                self.now = self.now.plus_millis(1);
            }
        }
        self.now = self.now.max(to);
        self.settle();
    }

    fn complete(&mut self, id: usize) -> Reply {
        loop {
            if let Live::Done(reply) = &mut self.reads[id] {
                return reply.take().expect("live read finished twice");
            }
            let at = self
                .next_deadline()
                .expect("a live read is pending but nothing is scheduled");
            self.run_until(at.max(self.now));
        }
    }
}

impl Target for WasmTarget {
    async fn request(&mut self, req: Request) -> Reply {
        let id = self.begin(req);
        self.complete(id)
    }

    async fn start(&mut self, req: Request) -> LiveRead {
        LiveRead(self.begin(req))
    }

    async fn finish(&mut self, read: LiveRead) -> Reply {
        self.complete(read.0)
    }

    async fn advance(&mut self, ms: u64) {
        let to = self.now.plus_millis(ms);
        self.run_until(to);
    }

    fn now(&self) -> UnixMillis {
        self.now
    }

    async fn restart(&mut self) -> bool {
        false
    }
}

/// One `#[wasm_bindgen_test]` per scenario, in a module per spec area.
macro_rules! wasm_tests {
    (() $($module:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
        $(mod $module {
            $(
                #[super::wasm_bindgen_test]
                async fn $name() {
                    let mut t = super::WasmTarget::new();
                    ds_conformance::cases::$module::$name(&mut t).await;
                }
            )*
        })*
    };
}

ds_conformance::for_each_scenario!(wasm_tests!());
