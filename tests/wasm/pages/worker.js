// The client scenarios inside a dedicated module Worker.
import { DurableStreams } from "/pkg/durable-streams.js"
import * as client from "/client.js"
import { runClientScenarios } from "/scenarios.mjs"

runClientScenarios({ DurableStreams, client }).then(
  (done) => postMessage({ done }),
  (error) => postMessage({ error: String(error?.stack ?? error) }),
)
