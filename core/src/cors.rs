//! CORS header values: every header the protocol uses may be sent, and every
//! protocol response header may be read, by browser clients.

/// `Access-Control-Allow-Methods` on preflight answers.
pub const ALLOW_METHODS: &str = "GET, HEAD, PUT, POST, DELETE, OPTIONS";

/// `Access-Control-Allow-Headers` when the preflight names none.
pub const ALLOW_HEADERS: &str = "Content-Type, Authorization, If-None-Match, Stream-TTL, \
Stream-Expires-At, Stream-Seq, Stream-Closed, Stream-Forked-From, Stream-Fork-Offset, \
Stream-Fork-Sub-Offset, Producer-Id, Producer-Epoch, Producer-Seq";

/// `Access-Control-Expose-Headers` on every answer.
pub const EXPOSE_HEADERS: &str = "Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, \
Stream-Closed, Stream-TTL, Stream-Expires-At, Stream-Sse-Data-Encoding, Producer-Epoch, \
Producer-Seq, Producer-Expected-Seq, Producer-Received-Seq, ETag, Location, Content-Type";
