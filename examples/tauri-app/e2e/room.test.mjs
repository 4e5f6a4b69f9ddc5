// End-to-end test of the POST + SSE chat (src/panels/room.ts) in the real webview: typed SSE events in, one POST
// per message out through the plugin, and a restart of the demo server's room (its streams dropped, 503 for a
// moment) with nothing lost or doubled, on the page and in what the server stored. Saves artifacts/e2e-room.png
// at 1024x768 after the restart.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import { dataOf, demoBase, getJson, painted, press, reveal, viewport } from './connections.mjs'
import { repo, run, saveScreenshot, show, startApp, stopApp, textOf, typeInto, waitFor, withLog } from './webdriver.mjs'

const SCREENSHOT = join(repo, 'artifacts/e2e-room.png')
const BEFORE = ['first, before the restart', 'second, before the restart']
const BOB = 'from Bob, who posted as soon as the room was back'
const DURING = ['third, sent while the room restarts', 'fourth, sent while the room restarts', 'fifth, sent while the room restarts']

let base

before(() =>
  withLog(async () => {
    await startApp()
    base = await demoBase()
  }),
)
after(stopApp)

/** The chat's items as the page lists them (notes left out). */
const shown = () =>
  run(`return Array.from(document.querySelectorAll('#room-log li:not(.note)'), (li) => ({
    text: li.querySelector('.text')?.textContent, id: li.dataset.id ?? null, cls: li.className,
    status: li.querySelector('.time')?.textContent }))`)

/** Another member of the room: POSTs from here, retried while the room answers 503, with one key. */
async function bobSays(text) {
  const key = `bob-${Date.now()}`
  const deadline = Date.now() + 20_000
  let last
  while (Date.now() < deadline) {
    const response = await fetch(`${base}/room/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ author: 'Bob', text }),
      signal: AbortSignal.timeout(5_000),
    })
    last = response.status
    if (response.status === 201) return
    await new Promise((r) => setTimeout(r, 300))
  }
  assert.fail(`expected Bob's POST to be stored within 20 s, got HTTP ${last}`)
}

async function say(text) {
  await typeInto('#room-input', text)
  await press('#room-send')
}

test('join: the SSE stream opens with a WELCOME, and each message is POSTed and comes back as NEW_MESSAGE', { timeout: 60_000 }, () =>
  withLog(async () => {
    const before = await getJson(base, '/room/log')
    assert.equal(before.streams, 0, `expected no room stream before joining, got ${show(before)}`)
    await press('#room-join')
    await waitFor('#room-state to say "connected"', () => textOf('#room-state'), (s) => s === 'connected')
    await waitFor('the WELCOME note', () => textOf('#room-log li.note'), (t) => t?.startsWith('stream open: the room holds 0 messages'))
    for (const text of BEFORE) await say(text)
    const items = await waitFor('both messages delivered (a NEW_MESSAGE with an id)', shown, (list) =>
      list.length === 2 && list.every((i) => i.id !== null))
    assert.deepEqual(items.map((i) => i.text), BEFORE, `expected the messages in order, got ${show(items)}`)
    assert.ok(items.every((i) => i.cls.includes('delivered')), `expected delivered items, got ${show(items)}`)
    const log = await getJson(base, '/room/log')
    assert.deepEqual(log.messages.map((m) => m.text), BEFORE, `expected the server to store both once, got ${show(log.messages)}`)
    assert.equal(log.streams, 1, `expected one room stream at the server, got ${log.streams}`)
  }),
)

test('a restart of the room: messages sent meanwhile are retried and stored once, the stream resumes, nothing is lost or doubled', { timeout: 90_000 }, () =>
  withLog(async () => {
    await press('#room-restart')
    // The server is down now (3 s): the stream ended, and POSTs get 503 until it is back.
    await waitFor('the server to report the restart', () => getJson(base, '/room/log'), (l) => l.restarts === 1)
    // The stream ended with the restart: the badge leaves connected while the room refuses (3 s).
    await waitFor('#room-state to leave "connected"', () => textOf('#room-state'), (s) => s !== 'connected')
    for (const text of DURING) await say(text)
    // Bob's message is stored while the page's stream may still be down: it must arrive all the same, once.
    await bobSays(BOB)
    await waitFor('#room-state to say "connected" again', () => textOf('#room-state'), (s) => s === 'connected')

    const all = [...BEFORE, ...DURING]
    const items = await waitFor('all six messages delivered', shown, (list) =>
      list.length >= all.length + 1 && list.every((i) => i.id !== null))
    // Ada's own in the order she sent them, Bob's among them wherever the server put it, each once.
    assert.deepEqual(items.filter((i) => i.text !== BOB).map((i) => i.text), all, `expected Ada's messages once, in order, got ${show(items)}`)
    assert.equal(items.filter((i) => i.text === BOB).length, 1, `expected Bob's message once, got ${show(items)}`)
    const ids = items.map((i) => Number(i.id))
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `expected rising ids, got ${show(ids)}`)
    assert.equal(new Set(ids).size, ids.length, `expected no id twice, got ${show(ids)}`)
    assert.ok(items.every((i) => i.cls.includes('delivered') && !i.cls.includes('failed')), `got ${show(items)}`)

    const log = await getJson(base, '/room/log')
    assert.deepEqual(log.messages.map((m) => m.text), items.map((i) => i.text), `expected the page to list what the server stored, in its order, got ${show(log.messages)}`)
    assert.deepEqual(log.messages.map((m) => m.id), ids, 'expected the page to show the ids the server gave')
    const keys = log.messages.map((m) => m.key)
    assert.ok(keys.every(Boolean) && new Set(keys).size === keys.length, `expected one Idempotency-Key per message, got ${show(keys)}`)
    // POSTs were refused while the room restarted and retried: the server saw more POSTs than it stored.
    assert.ok(log.refusedPosts >= 1, `expected at least one POST refused during the restart, got ${show(log)}`)
    assert.ok(log.refusedStreams >= 1, `expected the stream refused during the restart, got ${show(log)}`)
    assert.equal(log.messages.length, all.length + 1, `expected six messages stored, got ${show(log)}`)
    // Every POST (the page's and Bob's) was refused, stored, or recognised by its key and not stored again.
    assert.equal(log.posts, log.messages.length + log.refusedPosts + log.replays, `expected every POST accounted for, got ${show(log)}`)
    assert.ok(log.streamsAccepted >= 2, `expected the stream to be opened again, got ${show(log)}`)
    assert.equal(log.streams, 1, `expected one room stream open, got ${show(log)}`)
    assert.equal(log.down, false)

    // The page's server line shows the same counts.
    await waitFor(`#room-server to show 6 stored, ${log.refusedPosts} POSTs refused`, () => dataOf('#room-server'), (d) =>
      d.stored === '6' && d.refused === String(log.refusedPosts) && d.posts === String(log.posts))
  }),
)

test('screenshot at 1024x768: the chat after the restart', { timeout: 60_000 }, () =>
  withLog(async () => {
    await viewport(1024, 768)
    const panel = await reveal('[data-panel="room"]')
    assert.ok(panel?.inside, `expected the whole chat panel in the 1024x768 viewport, got ${show(panel)}`)
    for (const selector of ['#room-state', '#room-server', '#room-log li:last-child', '#room-input']) {
      const box = await reveal(selector)
      assert.ok(box?.inside && box.visible, `expected ${selector} inside the 1024x768 viewport, got ${show(box)}`)
    }
    assert.equal(await textOf('#room-state'), 'connected')
    await waitFor('#room-server to show 6 stored', () => dataOf('#room-server'), (d) => d.stored === '6')
    const items = await shown()
    assert.equal(items.length, 6, `expected the six messages, got ${show(items)}`)
    assert.match(await textOf('#room-server'), /^server: 6 stored · \d+ POSTs \([1-9]\d* refused, \d+ replayed\)$/)
    await painted()
    await saveScreenshot(SCREENSHOT)
  }),
)
