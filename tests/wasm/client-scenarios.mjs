// The official @durable-streams/client against the wasm host's `local.fetch`:
// create, append (JSON and bytes), idempotent producer, catch-up, long-poll,
// SSE subscribe, close → EOF. Written once; run in Node (client.test.mjs)
// and in a page of headless Chromium (browser.test.mjs), which each pass in
// the package's DurableStreams and the client module. Given `server` (a
// stream URL prefix on the native server) instead, the same scenarios run
// against it with the page's own `fetch` (cors.test.mjs: another origin).

/**
 * Runs every scenario; resolves with their names, or rejects with the first
 * failure (its message names the scenario).
 */
export async function runClientScenarios({ DurableStreams, client, server }) {
  const { DurableStream, IdempotentProducer, stream } = client
  const local = server ? undefined : await DurableStreams.open({ longPollTimeoutMs: 2_000 })
  const base = server ?? "https://streams.local/v1/stream"
  const fetch = local ? local.fetch : globalThis.fetch.bind(globalThis)
  const done = []

  async function scenario(name, body) {
    try {
      await within(10_000, body(), name)
      done.push(name)
    } catch (error) {
      throw new Error(`${name}: ${error?.message ?? error}`, { cause: error })
    }
  }

  await scenario("create, append JSON, catch-up", async () => {
    const url = `${base}/json`
    const handle = await DurableStream.create({ url, contentType: "application/json", fetch })
    await handle.append(JSON.stringify({ n: 1 }))
    await handle.append(JSON.stringify({ n: 2 }))
    const items = await (await stream({ url, fetch, live: false })).json()
    equal(items, [{ n: 1 }, { n: 2 }])
  })

  await scenario("append bytes, catch-up", async () => {
    const url = `${base}/bytes`
    const handle = await DurableStream.create({ url, contentType: "application/octet-stream", fetch })
    await handle.append(new Uint8Array([1, 2, 3]))
    await handle.append(new Uint8Array([0, 255]))
    const bytes = await (await handle.stream({ live: false })).body()
    equal([...bytes], [1, 2, 3, 0, 255])
  })

  await scenario("idempotent producer", async () => {
    const url = `${base}/producer`
    const handle = await DurableStream.create({ url, contentType: "application/json", fetch })
    const errors = []
    const producer = new IdempotentProducer(handle, "writer-1", { fetch, lingerMs: 1, onError: (e) => errors.push(e) })
    for (let i = 0; i < 5; i++) producer.append(JSON.stringify({ i }))
    await producer.flush()
    equal(errors, [])
    // A retry of an acknowledged batch (same producer, epoch, seq) is
    // acknowledged again and not appended twice.
    const retry = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "producer-id": "writer-1", "producer-epoch": "0", "producer-seq": "0" },
      body: JSON.stringify({ i: 0 }),
    })
    if (!retry.ok) throw new Error(`duplicate batch answered ${retry.status}`)
    const items = await (await stream({ url, fetch, live: false })).json()
    equal(items, [0, 1, 2, 3, 4].map((i) => ({ i })))
    await producer.detach()
  })

  await scenario("long-poll sees a later append", async () => {
    const url = `${base}/long-poll`
    const handle = await DurableStream.create({ url, contentType: "application/json", fetch })
    const { offset } = await handle.head()
    const res = await handle.stream({ live: "long-poll", offset })
    const seen = []
    const got = new Promise((resolve) => {
      res.subscribeJson((batch) => {
        seen.push(...batch.items)
        if (seen.length >= 1) resolve()
      })
    })
    await sleep(50)
    await handle.append(JSON.stringify({ late: true }))
    await got
    equal(seen, [{ late: true }])
    res.cancel()
    await res.closed.catch(() => {})
  })

  await scenario("SSE subscribe sees appends live, then EOF on close", async () => {
    const url = `${base}/sse`
    const handle = await DurableStream.create({ url, contentType: "application/json", fetch })
    await handle.append(JSON.stringify("before"))
    const res = await handle.stream({ live: "sse" })
    const seen = []
    let closed = false
    let wake = () => {}
    res.subscribeJson((batch) => {
      seen.push(...batch.items)
      if (batch.streamClosed) closed = true
      wake()
    })
    const until = async (test) => {
      while (!test()) await new Promise((resolve) => (wake = resolve))
    }
    await until(() => seen.length >= 1)
    await handle.append(JSON.stringify("live-1"))
    await handle.append(JSON.stringify("live-2"))
    await until(() => seen.length >= 3)
    await handle.close()
    await until(() => closed || res.streamClosed)
    equal(seen, ["before", "live-1", "live-2"])
    await res.closed.catch(() => {})
  })

  await scenario("closed stream: EOF for readers, appends refused", async () => {
    const url = `${base}/closed`
    const handle = await DurableStream.create({ url, contentType: "text/plain", fetch })
    await handle.append("last words")
    const { finalOffset } = await handle.close()
    const res = await handle.stream({ live: false })
    equal(await res.text(), "last words")
    equal([res.streamClosed, res.offset], [true, finalOffset])
    let refused = false
    await handle.append("more").catch(() => (refused = true))
    if (!refused) throw new Error("append after close was accepted")
  })

  if (!local) return done
  // Every reader above was cancelled or ended: nothing stays parked.
  await scenario("no parked readers left", async () => {
    for (let i = 0; i < 50 && local.pending > 0; i++) await sleep(20)
    equal(local.pending, 0)
  })
  local.close()
  return done
}

function equal(actual, expected) {
  const a = JSON.stringify(actual)
  const e = JSON.stringify(expected)
  if (a !== e) throw new Error(`expected ${e}, got ${a}`)
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function within(ms, promise, name) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} did not finish within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
