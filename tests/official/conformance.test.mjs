// The official suite, pointed at the server named by DS_URL (an origin).
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

runConformanceTests({
  baseUrl: process.env.DS_URL,
  subscriptions: process.env.DS_SUBSCRIPTIONS === "1",
})
