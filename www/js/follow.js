// Follows a stream live with the official client: `stream()` over SSE from
// an offset, batch by batch. Each batch says where it starts and ends, so a
// caller can save the end and later resume exactly there.

import { stream } from "@durable-streams/client"
import { streamUrl } from "./net.js"
import { ends } from "./store.js"

export const isJson = (contentType) => /^application\/json\b/i.test(contentType ?? "")

/**
 * Starts following `name` from `offset` ("-1" for the beginning). Calls
 * `onBatch({ items | text, start, end, upToDate, closed })` for each batch,
 * in order, and `onEnd({ eof, error, cancelled })` once; `onOpen()` when
 * the first response has arrived (the reader is connected). Resolves with a
 * handle whose `cancel()` stops it (aborting the live request).
 */
export async function follow({ fetch, name, contentType, offset = "-1", onOpen, onBatch, onEnd }) {
  const json = isJson(contentType)
  let cancelled = false
  let ended = false
  const end = (info) => {
    if (ended) return
    ended = true
    onEnd?.({ ...info, cancelled })
  }
  let res
  try {
    res = await stream({ url: streamUrl(name), offset, live: "sse", fetch, json, warnOnHttp: false })
  } catch (error) {
    end({ error })
    return { cancel() {} }
  }
  onOpen?.()
  let start = offset
  const deliver = async (batch, content) => {
    const info = { ...content, start, end: batch.offset, upToDate: batch.upToDate, closed: batch.streamClosed }
    start = batch.offset
    if (json && content.items.length) {
      // The offset after the last message of a batch is exactly where that
      // message ends: remember it for forks.
      const last = content.items.at(-1)
      if (last && typeof last === "object") ends.learn(last.id, batch.offset)
    }
    await onBatch(info)
  }
  const unsubscribe = json
    ? res.subscribeJson((batch) => deliver(batch, { items: batch.items }))
    : res.subscribeText((chunk) => deliver(chunk, { text: chunk.text }))
  res.closed.then(
    () => end({ eof: !cancelled && res.streamClosed }),
    (error) => end({ error }),
  )
  return {
    response: res,
    cancel() {
      if (cancelled || ended) return
      cancelled = true
      unsubscribe()
      end({})
    },
  }
}
