//! Deleting streams (PROTOCOL §5.4).

use crate::dsl::*;
use crate::target::Target;

/// §5.4: `DELETE` is 204; the stream is then 404 for every operation.
pub async fn delete_removes_stream<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "data").await;
    t.request(delete("s")).await.status_is(204);
    t.request(get("s")).await.status_is(404);
    t.request(head("s")).await.status_is(404);
    t.request(post("s").ct("text/plain").with_body("x"))
        .await
        .status_is(404);
    t.request(delete("s")).await.status_is(404);
}

/// §5.4: deleting a stream that never existed is 404.
pub async fn delete_missing_stream<T: Target>(t: &mut T) {
    t.request(delete("nope")).await.status_is(404);
}

/// §5.4: a re-created path is a new stream: 201, only the new data,
/// fresh producer and `Stream-Seq` state, any configuration.
pub async fn recreate_after_delete_is_fresh<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "old data").await;
    t.request(
        post("s")
            .ct("text/plain")
            .with_body(" more")
            .seq("9")
            .producer("p", 3, 0),
    )
    .await
    .status_is(200);
    t.request(delete("s")).await.status_is(204);
    t.request(put("s").ct("application/json").with_body(r#"["new"]"#))
        .await
        .status_is(201);
    t.request(
        post("s")
            .ct("application/json")
            .with_body(r#"{"n":1}"#)
            .seq("1")
            .producer("p", 0, 0),
    )
    .await
    .status_is(200);
    t.request(get("s")).await.json_is(r#"["new",{"n":1}]"#);
}

/// §5.4: deleting one stream leaves others untouched.
pub async fn delete_is_per_stream<T: Target>(t: &mut T) {
    create_with(t, "a", "text/plain", "A").await;
    create_with(t, "b", "text/plain", "B").await;
    t.request(delete("a")).await.status_is(204);
    assert_eq!(read_all(t, "b", None).await.text(), "B");
}
