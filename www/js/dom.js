// Small DOM and formatting helpers (no framework).

/**
 * Creates an element: h("button.primary", { onclick, type: "submit" }, "Send"),
 * h("section.card#writer") (classes, then an optional id).
 * Attributes starting with "on" become listeners; `data-*` and `aria-*`
 * become attributes; `class`/`className` and `hidden` are handled; children
 * may be strings, nodes, arrays, or null/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const [head, id] = tag.split("#")
  const [name, ...classes] = head.split(".")
  const el = document.createElement(name || "div")
  if (classes.length) el.className = classes.join(" ")
  if (id) el.id = id
  if (attrs === null || typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs)) {
    children.unshift(attrs)
    attrs = {}
  }
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value)
    else if (key === "class" || key === "className") el.className = [el.className, value].filter(Boolean).join(" ")
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "for") el.setAttribute(key, value)
    else if (key in el) el[key] = value
    else el.setAttribute(key, value === true ? "" : value)
  }
  append(el, children)
  return el
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    if (Array.isArray(child)) append(el, child)
    else el.append(child instanceof Node ? child : String(child))
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren()
  append(el, children)
  return el
}

/**
 * An offset as a monospace token with its zero padding dimmed, so the
 * significant digits stand out (offsets are opaque: shown as they are).
 */
export function offsetView(offset, extra = {}) {
  if (offset === undefined || offset === null) return h("code.offset", extra, "—")
  const text = String(offset)
  if (extra.compact) {
    // Only the significant end, with the full token as a tooltip.
    const tail = text.replace(/^[0_]*/, "") || "0"
    return h("code.offset", { title: text }, h("span.pad", "…"), tail)
  }
  const match = /^([0_]*)(.*)$/.exec(text)
  let pad = match[1]
  let rest = match[2]
  if (rest === "") {
    // All zeros: keep the last digit bright.
    pad = text.slice(0, -1)
    rest = text.slice(-1)
  }
  // May break after the "_" between its two fields on narrow screens.
  const at = text.indexOf("_") + 1
  const parts = at > 0 && at <= pad.length ? [h("span.pad", pad.slice(0, at)), h("wbr"), h("span.pad", pad.slice(at)), rest] : [h("span.pad", pad), rest]
  return h("code.offset", { title: text, ...extra }, parts)
}

const ICONS = {
  // A branch: the fork symbol.
  fork: '<circle cx="5" cy="3.5" r="1.8"/><circle cx="5" cy="12.5" r="1.8"/><circle cx="11.5" cy="5.5" r="1.8"/><path d="M5 5.3v5.4M11.5 7.3c0 2.7-6.5 1.7-6.5 3.4"/>',
}

/** A small inline SVG icon (stroke follows the text colour). */
export function icon(name) {
  const span = document.createElement("span")
  span.innerHTML = `<svg class="icon" viewBox="0 0 16 16" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round" aria-hidden="true">${ICONS[name]}</svg>`
  return span.firstChild
}

/** A classic hex dump: offset, 16 bytes in hex, and printable ASCII. */
export function hexDump(bytes, width = 16, max = 4096) {
  const lines = []
  const n = Math.min(bytes.length, max)
  for (let at = 0; at < n; at += width) {
    const row = bytes.subarray(at, Math.min(at + width, n))
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ")
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "·")).join("")
    lines.push(`${at.toString(16).padStart(6, "0")}  ${hex.padEnd(width * 3 - 1)}  ${ascii}`)
  }
  if (bytes.length > n) lines.push(`… ${bytes.length - n} more bytes`)
  return lines.join("\n")
}

/** "12:01:03" in local time. */
export function clock(ms = Date.now()) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
}

/** Reason phrases for the statuses this demo sees. */
export const REASONS = {
  200: "OK",
  201: "Created",
  204: "No Content",
  304: "Not Modified",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  410: "Gone",
  413: "Payload Too Large",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
}

/** `n` random hex digits (crypto.randomUUID needs a secure context; this does not). */
export function randomId(n = 8) {
  const bytes = crypto.getRandomValues(new Uint8Array(Math.ceil(n / 2)))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("").slice(0, n)
}

/** Reads a JSON value from localStorage (or `fallback`). */
export function load(key, fallback) {
  try {
    const text = localStorage.getItem(key)
    return text === null ? fallback : JSON.parse(text)
  } catch {
    return fallback
  }
}

/** Writes a JSON value to localStorage. */
export function save(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value))
  } catch {
    // Quota or privacy mode: the demo keeps working without persistence.
  }
}
