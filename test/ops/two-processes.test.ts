import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { openDatabase } from '../../src/db/index.ts'
import { bootstrapFirstAdministrator } from '../../src/ops/bootstrap.ts'
import { hashPassword } from '../../src/lib/passwords.ts'
import { ADMINISTRATOR } from '../../src/lib/roles.ts'
import { totpCodeAt } from '../../src/lib/otp.ts'
import { uuid } from '../../src/lib/tokens.ts'
import { approveDomain, insertUser } from '../../src/areas/auth/repository.ts'
import { ADMIN_USERNAME, HttpClient, PASSWORD, SHARED_KEYS, api, freshPgSchema, startPortal, tempDir } from './portal.ts'

t.setTimeout(120_000)

if (!process.env.TEST_DATABASE_URL) {
  t.plan(0, 'two portal processes share a PostgreSQL database: set TEST_DATABASE_URL to run')
} else {
  const RATE_LIMIT = 10
  // The database store for @fastify/rate-limit is wired in src/plugins/api.ts by the lead.
  const storeWired = fs.readFileSync(path.resolve(import.meta.dirname, '../../src/plugins/api.ts'), 'utf8').includes('rate-limit-store')

  t.test('two portals on one PostgreSQL database', async (t) => {
    const databaseUrl = await freshPgSchema(t)
    const env = { DATABASE_URL: databaseUrl, ...SHARED_KEYS, API_RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT) }
    // Started together on an empty schema: both migrate at the same moment. (Without
    // MSSP_ADMIN_*: creating the first Administrator from two processes at once is the
    // bootstrap test below.)
    const [a, b] = await Promise.all([startPortal(t, { dataDir: tempDir(t), env, admin: false }), startPortal(t, { dataDir: tempDir(t), env, admin: false })])
    const { db } = openDatabase({ databaseUrl, dataDir: tempDir(t) })
    t.teardown(() => db.destroy())

    t.test('both started; the migrations ran once', async (t) => {
      t.ok(a.running() && b.running())
      const migrations = await db.selectFrom('kysely_migration' as never).select('name' as never).execute()
      t.ok(migrations.length > 0)
      t.equal(new Set(migrations.map((m) => (m as { name: string }).name)).size, migrations.length)
    })

    async function newUser(username: string) {
      const now = Date.now()
      await approveDomain(db, username.split('@')[1]!, now)
      return insertUser(db, {
        uuid: uuid(), username, name: username, email: null, password_hash: await hashPassword(PASSWORD), role: ADMINISTRATOR, enabled: 1,
        locked_until: null, last_login_at: null, last_failed_login_at: null, last_login_attempt_at: null, password_changed_at: now, created_at: now, updated_at: now,
      })
    }

    await newUser(ADMIN_USERNAME)

    t.test('a session made on one works on the other; signing out on one ends it on both', async (t) => {
      const onA = new HttpClient(a.baseUrl)
      t.equal((await onA.signIn()).status, 303)
      const onB = onA.to(b.baseUrl)
      t.equal((await onB.get('/accounts')).status, 200, 'the cookie from A works on B')
      t.equal((await onA.get('/accounts')).status, 200)
      const cookieBefore = new Map(onA.cookies)
      t.equal((await onB.post('/logout')).status, 303, 'signed out on B')
      // The cookie as it was before the sign-out, as another tab would still send it.
      const stale = new HttpClient(a.baseUrl)
      stale.cookies = new Map(cookieBefore)
      const res = await stale.get('/accounts')
      t.not(res.status, 200, `the session is over on A too (${res.status} ${res.headers.get('location') ?? ''})`)
    })

    t.test('lockout counts wrong passwords on both processes', async (t) => {
      const user = await newUser('lock@example.com')
      for (let i = 0; i < 5; i++) {
        const res = await new HttpClient([a, b][i % 2]!.baseUrl).signIn(user.username, 'Wrong-Password-9!')
        t.equal(res.status, 401, `wrong password ${i + 1} on ${i % 2 ? 'B' : 'A'}`)
      }
      const row = await db.selectFrom('users').select(['failed_login_count', 'locked_until']).where('id', '=', user.id).executeTakeFirstOrThrow()
      t.equal(row.failed_login_count, 5)
      t.ok(row.locked_until && row.locked_until > Date.now(), 'locked')
      for (const portal of [a, b]) t.equal((await new HttpClient(portal.baseUrl).signIn(user.username)).status, 401, 'the right password is refused while locked')
    })

    t.test('an authenticator code used on one is refused on the other', async (t) => {
      const user = await newUser('totp@example.com')
      const setup = new HttpClient(a.baseUrl)
      t.equal((await setup.signIn(user.username)).status, 303)
      await setup.get('/my-account/two-factor/authenticator')
      const page = await setup.post('/my-account/two-factor/authenticator/start', { current_password: PASSWORD })
      const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(page.body)![1]!.replace(/ /g, '')
      t.equal((await setup.post('/my-account/two-factor/authenticator', { code: totpCodeAt(secret) })).status, 200)
      const code = totpCodeAt(secret, Date.now() + 30_000)

      const first = new HttpClient(a.baseUrl)
      t.equal((await first.signIn(user.username)).headers.get('location'), '/login/verify')
      await first.get('/login/verify')
      t.equal((await first.post('/login/verify', { code })).status, 303, 'the code works on A')

      const second = new HttpClient(b.baseUrl)
      t.equal((await second.signIn(user.username)).headers.get('location'), '/login/verify')
      await second.get('/login/verify')
      t.equal((await second.post('/login/verify', { code })).status, 401, 'the same code is refused on B')
    })

    t.test('the API rate limit holds across both processes', { todo: storeWired ? false : 'wire databaseRateLimitStore into src/plugins/api.ts (see the report)' }, async (t) => {
      const browser = new HttpClient(a.baseUrl)
      t.equal((await browser.signIn()).status, 303)
      const keys = await browser.apiKeys()
      const codes: number[] = []
      for (let i = 0; i < 2 * RATE_LIMIT; i++) codes.push((await api([a, b][i % 2]!.baseUrl, keys, 'GET', '/api/session')).status)
      t.same(codes.filter((c) => c === 200).length, RATE_LIMIT, `${RATE_LIMIT} answered in all: ${codes.join(' ')}`)
      t.same(codes.slice(RATE_LIMIT), Array(RATE_LIMIT).fill(429), 'then 429 from both')
    })
  })

  // Two processes started at once on an empty database, both with MSSP_ADMIN_*: each finds
  // no users and creates the Administrator; one of them must lose quietly, not stop. Run
  // in-process (two apps, as `serve` builds them) so that the race happens every time.
  t.test('the first Administrator from MSSP_ADMIN_* when two processes start at once', {
  }, async (t) => {
    const cfg = loadConfig({
      NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: tempDir(t), DATABASE_URL: await freshPgSchema(t), ...SHARED_KEYS,
      MSSP_ADMIN_USERNAME: ADMIN_USERNAME, MSSP_ADMIN_PASSWORD: PASSWORD,
    })
    const apps = [await buildApp(cfg), await buildApp(cfg)]
    t.teardown(() => Promise.all(apps.map((app) => app.close())))
    const results = await Promise.allSettled(apps.map((app) => bootstrapFirstAdministrator(app, () => {})))
    t.same(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'started')), ['started', 'started'])
    t.same((await apps[0]!.db.selectFrom('users').select('username').execute()).map((u) => u.username), [ADMIN_USERNAME], 'one Administrator')
  })
}
