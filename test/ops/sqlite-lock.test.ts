// Another connection holds SQLite's write lock for 10 s (another process, a backup tool, an
// operator's sqlite3 shell): the portal must keep answering, refuse writes with 503 and
// Retry-After when the wait runs out, say so on /readyz, and write again once the lock ends.
import path from 'node:path'
import SQLite from 'better-sqlite3'
import t from 'tap'
import { HttpClient, api, sleep, startPortal, tempDir } from '../support/portal-process.ts'

t.setTimeout(90_000)

const LOCK_MS = 10_000

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now()
  const value = await run()
  return { value, ms: Date.now() - started }
}

t.test('an exclusive lock held by another connection for 10 s', async (t) => {
  const dataDir = tempDir(t)
  const portal = await startPortal(t, { dataDir, env: { API_RATE_LIMIT_PER_MINUTE: '1000000' } })
  const browser = new HttpClient(portal.baseUrl)
  t.equal((await browser.signIn()).status, 303)
  const keys = await browser.apiKeys()

  const other = new SQLite(path.join(dataDir, 'portal.sqlite'))
  t.teardown(() => other.close())
  other.exec('begin exclusive')
  const lockedAt = Date.now()
  const release = sleep(LOCK_MS).then(() => other.exec('rollback'))

  // A write waits for the lock, asynchronously, then gives up with 503.
  const write = timed(() => api(portal.baseUrl, keys, 'POST', '/api/mssp/accounts', { container_name: 'during-lock' }, 30_000))
  // Meanwhile the process answers: /healthz and /readyz, again and again.
  const health: number[] = []
  const ready: number[] = []
  const slowest = { ms: 0 }
  await sleep(200)
  while (Date.now() - lockedAt < LOCK_MS - 1_500) {
    const h = await timed(() => fetch(`${portal.baseUrl}/healthz`, { signal: AbortSignal.timeout(5_000) }))
    health.push(h.value.status)
    slowest.ms = Math.max(slowest.ms, h.ms)
    const r = await fetch(`${portal.baseUrl}/readyz`, { signal: AbortSignal.timeout(5_000) })
    ready.push(r.status)
    await sleep(250)
  }
  t.ok(health.length >= 10 && health.every((s) => s === 200), `/healthz answered 200 throughout (${health.length} times)`)
  t.ok(slowest.ms < 1_000, `/healthz answered within 1 s each time while the lock lasted (slowest ${slowest.ms} ms)`)
  t.ok(ready.every((s) => s === 503), `/readyz said 503 while the lock lasted (${ready.join(' ')})`)

  const refused = await write
  t.equal(refused.value.status, 503, 'the write waiting for the lock is refused with 503')
  t.match(refused.value.headers.get('retry-after') ?? '', /^\d+$/, 'with Retry-After')
  t.match(refused.value.json(), { statusCode: 503, message: /try again/ }, 'and the JSON error shape')
  t.ok(Date.now() - lockedAt < LOCK_MS, 'refused before the lock ended (the wait has a budget)')

  await release
  const readyAfter = await fetch(`${portal.baseUrl}/readyz`)
  t.equal(readyAfter.status, 200, '/readyz says 200 once the lock is gone')
  const written = await api(portal.baseUrl, keys, 'POST', '/api/mssp/accounts', { container_name: 'after-lock' })
  t.equal(written.status, 200, `the write succeeds after the lock (${written.body.slice(0, 200)})`)
  const search = await api(portal.baseUrl, keys, 'GET', '/api/mssp/accounts')
  const names = (search.json().accounts as Array<{ container_name: string }>).map((a) => a.container_name)
  t.ok(names.includes('after-lock') && !names.includes('during-lock'), 'the refused write left nothing behind; the later one is there')

  // A write that meets a shorter lock waits for it and succeeds: the retry is not a refusal.
  other.exec('begin exclusive')
  setTimeout(() => other.exec('rollback'), 1_000)
  const waited = await api(portal.baseUrl, keys, 'POST', '/api/mssp/accounts', { container_name: 'after-short-lock' })
  t.equal(waited.status, 200, 'a write meeting a 1 s lock waits for it and succeeds')
})
