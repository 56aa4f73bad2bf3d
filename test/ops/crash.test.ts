import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { HttpClient, SHARED_KEYS, api, freshPgSchema, integrityCheck, sleep, startPortal, tempDir, type PortalProcess } from '../support/portal-process.ts'

t.setTimeout(120_000)

const dialects = process.env.TEST_DATABASE_URL ? (['sqlite', 'postgres'] as const) : (['sqlite'] as const)
const WORKERS = 4
const shutdownWired = fs.readFileSync(path.resolve(import.meta.dirname, '../../src/server.ts'), 'utf8').includes('ops/shutdown')

interface Tracked {
  uuid: string
  /** The value of the last write the portal acknowledged with a 2xx. */
  acked: string
  /** A write sent but not answered when the portal died: it may or may not have happened. */
  inFlight: string | null
}

for (const dialect of dialects) {
  t.test(`${dialect}: every acknowledged write survives SIGKILL at a random moment`, async (t) => {
    const dataDir = tempDir(t)
    const env: Record<string, string> = { API_RATE_LIMIT_PER_MINUTE: '1000000' }
    if (dialect === 'postgres') Object.assign(env, SHARED_KEYS, { DATABASE_URL: await freshPgSchema(t) })
    const portal = await startPortal(t, { dataDir, env })
    const browser = new HttpClient(portal.baseUrl)
    t.equal((await browser.signIn()).status, 303)
    const keys = await browser.apiKeys()

    const accounts = new Map<string, Tracked>()
    const pendingCreates = new Set<string>()
    const unexpected: string[] = []
    let writes = 0
    let stop = false

    // Each worker creates accounts and edits its own, one request at a time, so each
    // account has at most one write in flight.
    async function worker(w: number, target: PortalProcess): Promise<void> {
      const mine: Tracked[] = []
      for (let seq = 0; !stop; seq++) {
        const value = `w${w}-${seq}`
        const create = mine.length < 3 || Math.random() < 0.25
        let tracked: Tracked | undefined
        if (create) pendingCreates.add(value)
        else {
          tracked = mine[Math.floor(Math.random() * mine.length)]!
          tracked.inFlight = value
        }
        let res
        try {
          res = create
            ? await api(target.baseUrl, keys, 'POST', '/api/mssp/accounts', { container_name: value, notes: value })
            : await api(target.baseUrl, keys, 'PATCH', `/api/mssp/accounts/${tracked!.uuid}`, { notes: value })
        } catch {
          return // the portal is gone: this write stays in flight
        }
        if (res.status < 200 || res.status > 299) {
          unexpected.push(`${res.status} ${res.body.slice(0, 200)}`)
          return
        }
        writes++
        if (create) {
          pendingCreates.delete(value)
          const a = { uuid: res.json().uuid as string, acked: value, inFlight: null }
          accounts.set(a.uuid, a)
          mine.push(a)
        } else {
          tracked!.acked = value
          tracked!.inFlight = null
        }
      }
    }

    const workload = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w, portal)))
    const delay = 1_000 + Math.floor(Math.random() * 2_000)
    await sleep(delay)
    await portal.kill()
    stop = true
    await workload
    t.same(unexpected, [], 'no write was refused before the kill')
    const inFlight = [...accounts.values()].filter((a) => a.inFlight).length + pendingCreates.size
    t.ok(writes > 20, `${writes} acknowledged writes, ${accounts.size} accounts, killed after ${delay} ms with ${inFlight} writes in flight`)

    const again = await startPortal(t, { dataDir, env })
    const list = await api(again.baseUrl, keys, 'GET', '/api/mssp/accounts')
    t.equal(list.status, 200, 'the restarted portal answers')
    const found = new Map<string, { uuid: string; container_name: string; notes: string }>(list.json().accounts.map((a: { uuid: string }) => [a.uuid, a]))
    const lost = [...accounts.values()].filter((a) => !found.has(a.uuid))
    t.same(lost.map((a) => a.acked), [], 'every acknowledged account is there')
    const wrong = [...accounts.values()]
      .filter((a) => found.has(a.uuid))
      .filter((a) => found.get(a.uuid)!.notes !== a.acked && found.get(a.uuid)!.notes !== a.inFlight)
      .map((a) => `${a.uuid}: ${found.get(a.uuid)!.notes}, expected ${a.acked}${a.inFlight ? ` or ${a.inFlight}` : ''}`)
    t.same(wrong, [], 'every account holds its last acknowledged edit (or the one in flight)')
    const extra = [...found.values()].filter((a) => !accounts.has(a.uuid) && !pendingCreates.has(a.container_name))
    t.same(extra.map((a) => a.container_name), [], 'no account appears that was never sent')

    // The restarted portal takes writes again.
    const more = await api(again.baseUrl, keys, 'POST', '/api/mssp/accounts', { container_name: 'After the crash' })
    t.equal(more.status, 200)
    if (dialect === 'sqlite') t.equal(integrityCheck(path.join(dataDir, 'portal.sqlite')), 'ok', 'PRAGMA integrity_check')

    // SIGTERM under load: the requests in progress finish, then a clean exit (not the
    // 10-second forced exit while keep-alive connections hold the server open).
    await t.test('SIGTERM under load: requests in progress finish, exit code 0', { todo: shutdownWired ? false : 'use exitOnSignals from src/ops/shutdown.ts in src/server.ts (see the report)' }, async (t) => {
      const writesDuringStop = Array.from({ length: 8 }, (_, i) =>
        api(again.baseUrl, keys, 'POST', '/api/mssp/accounts', { container_name: `Stopping ${i}` }).then((r) => r.status, () => 'refused'),
      )
      await sleep(20)
      const started = Date.now()
      t.equal(await again.stop(), 0, 'exit code 0 after SIGTERM')
      t.ok(Date.now() - started < 5_000, `stopped in ${Date.now() - started} ms`)
      const statuses = await Promise.all(writesDuringStop)
      t.same(statuses.filter((s) => s !== 200 && s !== 503 && s !== 'refused'), [], `answered 200, 503 or never accepted: ${statuses.join(' ')}`)
    })
  })
}
