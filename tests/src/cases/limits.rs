//! Size limits and chunked catch-up (PROTOCOL §5.2 413, §5.6 chunks).

use crate::dsl::*;
use crate::target::{Target, MAX_BODY_BYTES, MAX_CHUNK_BYTES};

const BIN: &str = "application/octet-stream";

fn pattern(len: usize, salt: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + salt) % 251) as u8).collect()
}

/// §5.2: a body over the server's limit is 413 and stores nothing; a body
/// exactly at the limit is accepted.
pub async fn body_over_limit_is_413<T: Target>(t: &mut T) {
    let tail = create(t, "s", BIN).await;
    t.request(post("s").ct(BIN).with_body(pattern(MAX_BODY_BYTES + 1, 0)))
        .await
        .status_is(413)
        .header_is("x-content-type-options", "nosniff");
    head_of(t, "s").await.header_is("stream-next-offset", &tail);
    t.request(put("big").ct(BIN).with_body(pattern(MAX_BODY_BYTES + 1, 0)))
        .await
        .status_is(413);
    assert_eq!(head_status(t, "big").await, 404);
    t.request(post("s").ct(BIN).with_body(pattern(MAX_BODY_BYTES, 1)))
        .await
        .status_is(204);
    assert_eq!(
        read_all(t, "s", None).await.bytes,
        pattern(MAX_BODY_BYTES, 1)
    );
}

/// §5.6: a stream larger than one chunk is read in several chunks, each at
/// most the chunk size, `Stream-Up-To-Date` only on the last, offsets
/// increasing, bytes exact.
pub async fn catch_up_is_chunked<T: Target>(t: &mut T) {
    create(t, "s", BIN).await;
    let mut want = Vec::new();
    // Small appends, then one append larger than a chunk.
    for i in 0..40 {
        let part = pattern(1000 + i, i);
        append(t, "s", BIN, &part).await;
        want.extend_from_slice(&part);
    }
    let big = pattern(MAX_CHUNK_BYTES * 2 + 123, 99);
    append(t, "s", BIN, &big).await;
    want.extend_from_slice(&big);
    let pages = read_all(t, "s", None).await;
    assert_eq!(pages.bytes.len(), want.len());
    assert!(pages.bytes == want, "bytes differ");
    assert!(
        pages.replies.len() >= want.len() / MAX_CHUNK_BYTES,
        "{} chunks for {} bytes",
        pages.replies.len(),
        want.len()
    );
    let mut last = String::new();
    for (i, page) in pages.replies.iter().enumerate() {
        assert!(page.body.len() <= MAX_CHUNK_BYTES, "chunk {i} too large");
        let next = page.next_offset();
        assert!(next > last, "offsets must increase");
        last = next;
        let is_last = i + 1 == pages.replies.len();
        assert_eq!(page.up_to_date(), is_last, "Stream-Up-To-Date on chunk {i}");
    }
}

/// §5.6: on a closed stream larger than one chunk, only the chunk that
/// reaches the final offset says `Stream-Closed`.
pub async fn closed_flag_only_on_last_chunk<T: Target>(t: &mut T) {
    create(t, "s", BIN).await;
    let data = pattern(MAX_CHUNK_BYTES * 3, 5);
    for part in data.chunks(MAX_CHUNK_BYTES / 2) {
        append(t, "s", BIN, part).await;
    }
    close(t, "s").await;
    let pages = read_all(t, "s", None).await;
    assert!(pages.bytes == data);
    assert!(pages.replies.len() >= 3);
    for (i, page) in pages.replies.iter().enumerate() {
        let is_last = i + 1 == pages.replies.len();
        assert_eq!(
            page.closed(),
            is_last,
            "Stream-Closed on chunk {i}: {page:?}"
        );
    }
}

/// §5.8: an SSE catch-up of a large stream delivers every byte, still with
/// a control event after each data event.
pub async fn sse_catch_up_of_large_stream<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    let mut want = String::new();
    for i in 0..(MAX_CHUNK_BYTES * 5 / 1000) {
        let part = format!("{i:04}{}", "x".repeat(996));
        append(t, "s", "text/plain", &part).await;
        want.push_str(&part);
    }
    close(t, "s").await;
    let body = t.request(get("s").offset("-1").sse()).await.sse();
    body.assert_well_formed();
    assert!(body.data().concat() == want, "SSE data differs");
    assert!(body.data().len() > 1, "expected several data events");
    assert!(body.last_control().closed);
}
