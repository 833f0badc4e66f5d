// Compares a vitest JSON report with the committed list of official-suite
// cases that are known not to pass yet (known-failures.txt).
//
// Fails when a case fails that is not on the list, when a listed case now
// passes (take it off the list), or when any case was skipped without being
// opted out by the suite itself.
//
// usage: node check-results.mjs <report.json> <label>
import { readFileSync } from "node:fs"

const [reportPath, label] = process.argv.slice(2)
const report = JSON.parse(readFileSync(reportPath, "utf8"))
const listPath = new URL("./known-failures.txt", import.meta.url)
const known = new Set(
  readFileSync(listPath, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .filter((l) => l.startsWith(`${label}: `))
    .map((l) => l.slice(label.length + 2)),
)

let passed = 0
let failed = 0
let skipped = 0
const unexpected = []
const fixed = []
for (const file of report.testResults ?? []) {
  for (const t of file.assertionResults ?? []) {
    const name = [...(t.ancestorTitles ?? []), t.title].join(" > ")
    if (t.status === "passed") {
      passed++
      if (known.has(name)) fixed.push(name)
    } else if (t.status === "failed") {
      failed++
      if (!known.has(name)) unexpected.push(name)
    } else {
      skipped++
    }
  }
}

console.log(`official suite [${label}]: ${passed} passed, ${failed} failed, ${skipped} skipped`)
for (const n of unexpected) console.log(`  FAILED (not on known-failures.txt): ${n}`)
for (const n of fixed) console.log(`  NOW PASSES (remove from known-failures.txt): ${n}`)
if (skipped > 0) console.log(`  ${skipped} cases were skipped: every case must run`)
if (passed === 0 || skipped > 0 || unexpected.length > 0 || fixed.length > 0) process.exit(1)
