// The disk is full (SQLITE_FULL): writes answer 503 with a page saying the portal cannot save
// (JSON for the API), the real error is logged once for the burst, /readyz and /metrics say
// so, and writes work again once there is room. "Full" without root tricks: SQLite's
// max_page_count caps the file at its current size on the portal's own connection, after a
// VACUUM has left no free pages, so a write needing a new page fails as on a full disk.
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { Writable } from 'node:stream'
import t from 'tap'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { Client, createUser } from '../helper.ts'

const FORM = { instance_url: 'https://full.example', contact_email: 'ops@full.example' }

type LogLine = { level: number; msg: string; [k: string]: unknown }

/** The app on a fresh SQLite file, its log lines kept (warn and above). */
async function appWithLog(t: Test) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-full-'))
  const lines: LogLine[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line))
      done()
    },
  })
  const config = loadConfig({ NODE_ENV: 'test', DATA_DIR: dataDir, BASE_URL: 'http://portal.test', LOG_LEVEL: 'warn' })
  const app = await buildApp(config, { logger: { level: 'warn', stream } })
  t.teardown(async () => {
    await app.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
  })
  return { app, dataDir, lines }
}

t.test('SQLITE_FULL: 503 with a clear answer, logged once, seen by /readyz and /metrics', async (t) => {
  const { app, lines } = await appWithLog(t)
  const admin = await createUser(app)
  const c = new Client(app)
  t.equal((await c.signIn(admin.username)).statusCode, 303)
  await c.get('/accounts/new')

  const sqlite = app.sqlite!
  sqlite.exec('vacuum')
  sqlite.pragma(`max_page_count = ${sqlite.pragma('page_count', { simple: true })}`)
  // Notes SQLite cannot squeeze into the pages it has: random text, longer than a page.
  const notes = () => crypto.randomBytes(6_000).toString('base64').slice(0, 8_000)
  const apiCreate = (name: string) =>
    app.inject({ method: 'POST', url: '/api/mssp/accounts', headers: { ...c.headers(), 'x-csrf-token': c.csrf, 'content-type': 'application/json' }, payload: { container_name: name, notes: notes() } })

  const page = await c.post('/accounts/new', { ...FORM, container_name: 'Full page', notes: notes() })
  t.equal(page.statusCode, 503, 'the form post answers 503')
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, 'The portal cannot save changes right now', 'with a page saying so')
  t.match(String(page.headers['retry-after']), /^\d+$/, 'and Retry-After')

  const json = await apiCreate('Full api')
  t.equal(json.statusCode, 503, 'the API answers 503')
  t.match(json.json(), { statusCode: 503, error: 'Service Unavailable', message: /cannot save/ }, 'with the JSON error shape')
  const burst: number[] = []
  for (let i = 0; i < 20; i++) burst.push((await apiCreate(`Full ${i}`)).statusCode)
  t.ok(burst.every((s) => s === 503), `20 more writes: 503 each (${burst.join(' ')})`)

  const errors = lines.filter((l) => l.level >= 50)
  t.equal(errors.length, 1, `one error logged for the burst of 22 failures (${errors.map((l) => l.msg).join(' | ')})`)
  t.match(errors[0]?.msg, /SQLITE_FULL/, 'naming the real error')
  t.notOk(lines.some((l) => /cannot rollback/.test(JSON.stringify(l))), 'never "cannot rollback - no transaction is active"')

  const ready = await app.inject('/readyz')
  t.equal(ready.statusCode, 503, '/readyz says 503 while writes fail')
  t.match(ready.json(), { code: 'SQLITE_FULL' })
  const metrics = (await app.inject('/metrics')).body
  t.match(metrics, /^mssp_db_writes_failing 1$/m, '/metrics: writes failing')
  t.match(metrics, /^mssp_db_write_faults_total\{code="SQLITE_FULL"\} (\d+)$/m, '/metrics: the faults counted by code')
  t.equal((await app.db.selectFrom('accounts').select('id').where('container_name', 'like', 'Full%').execute()).length, 0, 'nothing was half saved')

  // Room again: the next write succeeds and everything says so.
  sqlite.pragma('max_page_count = 1073741823')
  t.equal((await c.post('/accounts/new', { ...FORM, container_name: 'Room again', notes: notes() })).statusCode, 303, 'a write succeeds once there is room')
  t.equal((await app.inject('/readyz')).statusCode, 200, '/readyz says 200 again')
  t.match((await app.inject('/metrics')).body, /^mssp_db_writes_failing 0$/m)
  t.ok(lines.some((l) => l.level === 40 && /work again/.test(l.msg)), 'the end of the burst is logged')
})

/** Whether this machine lets us set the immutable attribute (root on ext4 and the like). */
function chattrWorks(): boolean {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-chattr-'))
  try {
    execFileSync('chattr', ['+i', dir], { stdio: 'ignore' })
    execFileSync('chattr', ['-i', dir], { stdio: 'ignore' })
    return true
  } catch {
    return false
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// Every commit fails, as on a full or failing disk: the WAL file is made immutable under the
// running portal (chattr +i: root ignores file modes, not this), so SQLite's write of the
// commit fails (SQLITE_IOERR_WRITE) and SQLite rolls the transaction back by itself.
t.test('every commit failing: sign-in answers 503 and the real error is logged, not "cannot rollback"', { skip: chattrWorks() ? false : 'needs chattr +i (root on a filesystem with attributes)' }, async (t) => {
  const { app, dataDir, lines } = await appWithLog(t)
  const admin = await createUser(app)
  const wal = path.join(dataDir, 'portal.sqlite-wal')
  t.ok(fs.existsSync(wal), 'the portal writes through a WAL file')
  execFileSync('chattr', ['+i', wal])
  let immutable = true
  const writable = () => {
    if (immutable) execFileSync('chattr', ['-i', wal])
    immutable = false
  }
  t.teardown(writable)

  const statuses: number[] = []
  for (let i = 0; i < 10; i++) {
    const c = new Client(app)
    const res = await c.signIn(admin.username)
    statuses.push(res.statusCode)
    if (i === 0) t.match(res.body, 'The portal cannot save changes right now', 'the sign-in page says the portal cannot save')
  }
  t.same(statuses, Array(10).fill(503), 'ten sign-ins: 503 each')
  const errors = lines.filter((l) => l.level >= 50)
  t.equal(errors.length, 1, `logged once (${errors.map((l) => l.msg).join(' | ')})`)
  t.match(errors[0]?.msg, /SQLITE_IOERR/, 'naming the real error')
  t.notOk(lines.some((l) => /cannot rollback/.test(JSON.stringify(l))), 'never "cannot rollback - no transaction is active"')
  t.equal((await app.inject('/readyz')).statusCode, 503, '/readyz says 503')

  writable()
  t.equal((await new Client(app).signIn(admin.username)).statusCode, 303, 'sign-in works once the disk takes writes again')
  t.equal((await app.inject('/readyz')).statusCode, 200)
})
