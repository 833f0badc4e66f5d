// What the page remembers in localStorage (shared by the tabs of this
// origin) and sessionStorage (this tab, kept across reloads).

import { load, save, randomId } from "./dom.js"

const KEY = "ds-demo"

/** This tab's id: survives reloads of the tab, differs between tabs. */
export const tabId = (() => {
  let id = sessionStorage.getItem(`${KEY}:tab`)
  if (!id) {
    id = randomId(4)
    sessionStorage.setItem(`${KEY}:tab`, id)
  }
  return id
})()

/**
 * Forgets everything saved for an earlier run of the local server (its
 * streams are gone). Returns true when something was forgotten.
 */
export function adoptInstance(instance) {
  const previous = localStorage.getItem(`${KEY}:instance`)
  if (previous === instance) return false
  for (const key of Object.keys(localStorage)) if (key.startsWith(`${KEY}:`)) localStorage.removeItem(key)
  for (const key of Object.keys(sessionStorage)) if (key.startsWith(`${KEY}:`) && key !== `${KEY}:tab`) sessionStorage.removeItem(key)
  localStorage.setItem(`${KEY}:instance`, instance)
  return previous !== null
}

/** The readers of this tab (their saved offsets and what they have shown). */
export const readersStore = {
  load: () => load(`${KEY}:readers:${tabId}`, []),
  save: (readers) => save(`${KEY}:readers:${tabId}`, readers),
}

/** Per-tab settings kept across reloads. */
export const tabState = {
  get: (name, fallback) => {
    const text = sessionStorage.getItem(`${KEY}:${name}`)
    return text === null ? fallback : JSON.parse(text)
  },
  set: (name, value) => sessionStorage.setItem(`${KEY}:${name}`, JSON.stringify(value)),
}

/** Settings shared by every tab. */
export const shared = {
  get: (name, fallback) => load(`${KEY}:${name}`, fallback),
  set: (name, value) => save(`${KEY}:${name}`, value),
}

/**
 * Where each chat message ends: message id → the offset right after it.
 * Learned from the Stream-Next-Offset of the append that wrote it, and from
 * readers (the offset at the end of each batch). Forks share their source's
 * offsets, so one map serves every stream.
 */
export const ends = {
  get: (id) => load(`${KEY}:ends`, {})[id],
  learn(id, offset) {
    if (!id || !offset) return
    const map = load(`${KEY}:ends`, {})
    if (map[id] === offset) return
    map[id] = offset
    const keys = Object.keys(map)
    if (keys.length > 2000) for (const k of keys.slice(0, keys.length - 2000)) delete map[k]
    save(`${KEY}:ends`, map)
  },
}
