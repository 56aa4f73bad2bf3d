import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { User } from '../../src/db/schema.ts'
import { buildApp, loggerOptions } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { type Tap, apiKeysFor, Client, buildTestApp, createUser, dialects } from '../helper.ts'
import { upsertTwoFactor } from '../../src/areas/two-factor/repository.ts'
import { API_KEY_FAILURES_PER_MINUTE } from '../../src/plugins/api.ts'
import { IMPORT_RATE_LIMIT_PER_MINUTE } from '../../src/areas/accounts/transfer-routes.ts'


/** API keys for a user, stored directly (as PUT /session/keys would). */
const keysFor = apiKeysFor

const randomKeys = () => `accessKey=${crypto.randomBytes(32).toString('hex')}; secretKey=${crypto.randomBytes(32).toString('hex')}`

function multipartBody(fields: Record<string, string>, boundary = `----gate${crypto.randomBytes(6).toString('hex')}`) {
  const parts = Object.entries(fields).map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)
  return { payload: `${parts.join('')}--${boundary}--\r\n`, contentType: `multipart/form-data; boundary=${boundary}` }
}

async function countUsers(app: FastifyInstance): Promise<number> {
  return Number((await app.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)
}

/**
 * Sends the headers of a large POST and only a little of its body, then waits for an answer:
 * the status (and Location) if the server answers without reading the rest, or 'no answer'
 * once `waitMs` pass.
 */
async function answerBeforeBody(app: FastifyInstance, url: string, headers: Record<string, string>, declaredBytes: number, waitMs = 4000): Promise<{ status: number | 'no answer'; location?: string }> {
  const address = app.server.listening ? app.listeningOrigin : await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = new URL(address)
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: url, headers: { ...headers, 'content-length': String(declaredBytes) } })
    const timer = setTimeout(() => {
      req.destroy()
      resolve({ status: 'no answer' })
    }, waitMs)
    req.on('response', (res) => {
      clearTimeout(timer)
      res.resume()
      resolve({ status: res.statusCode!, location: res.headers.location })
      req.destroy()
    })
    req.on('error', () => {})
    req.write(Buffer.alloc(64 * 1024, 'a'))
  })
}

for (const dialect of dialects) {
  t.test(`${dialect}: the gate and the edge`, async (t) => {
    async function setup(t: Tap, env: Record<string, string> = {}) {
      const { app } = await buildTestApp(t, dialect, env)
      const admin = await createUser(app, { role: 64, name: 'Ada Admin', username: 'ada@example.com' })
      const basic = await createUser(app, { role: 16, name: 'Bob Basic', username: 'bob@example.com' })
      return { app, admin, basic }
    }

    // ---- item 1: X-Impersonate ---------------------------------------------------------

    t.test('X-Impersonate with a session cookie is refused on pages and the API, never honoured', async (t) => {
      const { app, admin, basic } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      const as = { 'x-impersonate': `username=${basic.username}` }
      const page = await c.get('/accounts', as)
      t.equal(page.statusCode, 400, 'a page')
      const api = await app.inject({ url: '/api/session', headers: { ...c.headers(), ...as } })
      t.equal(api.statusCode, 400, 'the API with a cookie')
      t.match(api.json().message, /API keys/, 'api.json().message matches /API keys/')
      const me = await app.inject({ url: '/api/session', headers: c.headers() })
      t.equal(me.json().username, admin.username, 'without the header the cookie is still the Administrator')
      const anonymous = await app.inject({ method: 'POST', url: '/login', headers: as, payload: { username: basic.username, password: 'x' } })
      t.equal(anonymous.statusCode, 400, 'an anonymous page post')
    })

    t.test('X-Impersonate with API keys works on the API only', async (t) => {
      const { app, admin, basic } = await setup(t)
      const { header } = await keysFor(app, admin)
      const as = { 'x-apikeys': header, 'x-impersonate': `username=${basic.username}` }
      const api = await app.inject({ url: '/api/session', headers: as })
      t.equal(api.statusCode, 200, 'GET /api/session answers 200')
      t.equal(api.json().username, basic.username, 'the API acts as the user')
      const page = await app.inject({ url: '/accounts', headers: as })
      t.equal(page.statusCode, 400, 'a page refuses it')
      const nul = await app.inject({ url: '/api/session', headers: { 'x-apikeys': header, 'x-impersonate': 'username=bob\u0000@example.com' } })
      t.equal(nul.statusCode, 400, 'a username holding NUL is refused before any lookup')
    })

    t.test('X-Impersonate on /login/verify neither signs in as the other user nor counts against them', async (t) => {
      const { app, admin, basic } = await setup(t, { SMS_VIA_OUTBOX: 'true' })
      await upsertTwoFactor(app.db, admin.id, { sms_phone: '+15551234567' })
      const c = new Client(app)
      const signIn = await c.signIn(admin.username)
      t.match(signIn.headers.location, /^\/login\/verify/, 'signing in redirects to /^\\/login\\/verify/')
      await c.get('/login/verify')
      const sms = await app.db.selectFrom('outbox').selectAll().where('kind', '=', 'sms').orderBy('created_at', 'desc').executeTakeFirstOrThrow()
      const code = /code is (\d{6})/.exec(sms.body)![1]!
      const as = { 'x-impersonate': `username=${basic.username}` }
      const wrong = await c.post('/login/verify', { code: '000000' }, as)
      t.equal(wrong.statusCode, 400, 'POST /login/verify answers 400')
      const right = await c.post('/login/verify', { code }, as)
      t.equal(right.statusCode, 400, 'POST /login/verify answers 400')
      const bob = await app.db.selectFrom('users').selectAll().where('id', '=', basic.id).executeTakeFirstOrThrow()
      t.equal(bob.failed_login_count, 0, 'no failure counted against the other user')
      t.equal(Number((await app.db.selectFrom('sessions').select((eb) => eb.fn.countAll<number>().as('n')).where('user_id', '=', basic.id).executeTakeFirstOrThrow()).n), 0, 'no session for the other user')
      const done = await c.post('/login/verify', { code })
      t.equal(done.statusCode, 303, 'without the header the code signs the Administrator in')
      t.equal((await app.inject({ url: '/api/session', headers: c.headers() })).json().username, admin.username, `username is ${admin.username}`)
    })

    // ---- item 6: API-key failures and the API's one rate limit ------------------------

    t.test(`failed API-key attempts: ${API_KEY_FAILURES_PER_MINUTE} a minute per access key, then 429 before the lookup`, async (t) => {
      const { app, admin } = await setup(t)
      const { header, accessKey, secretKey } = await keysFor(app, admin)
      const wrongSecret = `accessKey=${accessKey}; secretKey=${'0'.repeat(64)}`
      for (let i = 0; i < API_KEY_FAILURES_PER_MINUTE; i++) {
        // From a different address each time: the access key's own count refuses.
        const res = await app.inject({ url: '/api/session', headers: { 'x-apikeys': wrongSecret }, remoteAddress: `10.1.0.${i + 1}` })
        t.equal(res.statusCode, 401, 'GET /api/session answers 401')
      }
      const refused = await app.inject({ url: '/api/session', headers: { 'x-apikeys': header }, remoteAddress: '10.1.1.1' })
      t.equal(refused.statusCode, 429, 'even the right secret waits')
      t.ok(Number(refused.headers['retry-after']) > 0 && Number(refused.headers['retry-after']) <= 60, 'with Retry-After')
      t.match(refused.json(), { statusCode: 429, error: 'Too Many Requests' }, 'refused.json() matches { statusCode: 429, error: \'Too Many Requests\' }')
      t.notMatch(JSON.stringify(refused.json()), secretKey, `JSON.stringify(refused.json()) does not match ${secretKey}`)
      const other = await createUser(app, { role: 16 })
      const otherKeys = await keysFor(app, other)
      t.equal((await app.inject({ url: '/api/session', headers: { 'x-apikeys': otherKeys.header }, remoteAddress: '10.1.1.1' })).statusCode, 200, 'other keys are untouched')
    })

    t.test('failed API-key attempts: counted per address too (random keys, garbage)', async (t) => {
      const { app, admin } = await setup(t)
      const { header } = await keysFor(app, admin)
      for (let i = 0; i < API_KEY_FAILURES_PER_MINUTE; i++) {
        const res = await app.inject({ url: i % 2 ? '/api/session' : '/session', headers: { 'x-apikeys': i % 3 ? randomKeys() : 'garbage' }, remoteAddress: '10.2.0.1' })
        t.equal(res.statusCode, 401, `attempt ${i + 1}: refused with 401`)
      }
      const refused = await app.inject({ url: '/api/session', headers: { 'x-apikeys': header }, remoteAddress: '10.2.0.1' })
      t.equal(refused.statusCode, 429, 'that address waits')
      t.ok(Number(refused.headers['retry-after']) > 0, 'Number(refused.headers[\'retry-after\']) > 0')
      t.equal((await app.inject({ url: '/api/session', headers: { 'x-apikeys': header }, remoteAddress: '10.2.0.2' })).statusCode, 200, 'another address is served')
    })

    t.test('the API rate limit is one budget per client across every API path', async (t) => {
      const { app, admin } = await setup(t, { API_RATE_LIMIT_PER_MINUTE: '4' })
      const { header } = await keysFor(app, admin)
      const urls = ['/api/session', '/api/users', '/api/mssp/accounts', '/users', '/api/audit-log/v1/events', '/api/mssp/logos']
      const codes: number[] = []
      for (const url of urls) codes.push((await app.inject({ url, headers: { 'x-apikeys': header } })).statusCode)
      t.same(codes.map((c) => c === 429), [false, false, false, false, true, true], `codes ${codes.join(',')}`)
    })

    // ---- item 7: access before validation ------------------------------------------

    t.test('access is checked before the body is parsed or validated', async (t) => {
      const { app, basic } = await setup(t)
      const malformed = [
        { payload: { username: 5, permissions: 'x' } },
        { payload: '{"username": ', headers: { 'content-type': 'application/json' } },
        { payload: 'x', headers: { 'content-type': 'application/x-unknown' } },
      ]
      for (const m of malformed) {
        const anonymous = await app.inject({ method: 'POST', url: '/api/users', payload: m.payload, headers: m.headers })
        t.equal(anonymous.statusCode, 401, `signed out: ${JSON.stringify(m.payload)}`)
      }
      const c = new Client(app)
      await c.signIn(basic.username)
      await c.get('/accounts')
      for (const m of malformed) {
        const res = await app.inject({ method: 'POST', url: '/api/users', payload: m.payload, headers: { ...c.headers(), 'x-csrf-token': c.csrf, ...m.headers } })
        t.equal(res.statusCode, 403, `a Basic user: ${JSON.stringify(m.payload)}`)
      }
      const { header } = await keysFor(app, basic)
      t.equal((await app.inject({ method: 'POST', url: '/api/users', payload: { username: 5 }, headers: { 'x-apikeys': header } })).statusCode, 403, 'with keys too')
    })

    // ---- item 8: no body read before authentication; limits per route ---------------

    t.test('a signed-out 30 MB import confirmation is answered without reading the body', async (t) => {
      const { app } = await setup(t)
      const page = await answerBeforeBody(app, '/accounts/import/confirm', { 'content-type': 'application/x-www-form-urlencoded' }, 30 * 1024 * 1024)
      t.equal(page.status, 303, 'the page sends the visitor to sign in')
      t.match(page.location, /^\/login/, 'page.location matches /^\\/login/')
      const upload = await answerBeforeBody(app, '/accounts/import', { 'content-type': 'multipart/form-data; boundary=x' }, 30 * 1024 * 1024)
      t.equal(upload.status, 303, 'answerBeforeBody(…) answers 303')
      const api = await answerBeforeBody(app, '/api/users', { 'content-type': 'application/json', 'x-apikeys': randomKeys() }, 30 * 1024 * 1024)
      t.equal(api.status, 401, 'bad keys on the API')
    })

    t.test('a signed-in Administrator: multipart bodies over the route limit are refused before they are read', async (t) => {
      const { app, admin } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      await c.get('/logos')
      const big = await answerBeforeBody(app, '/logos', { cookie: c.cookie, 'content-type': 'multipart/form-data; boundary=x' }, 30 * 1024 * 1024)
      t.equal(big.status, 413, 'answerBeforeBody(…) answers 413')
    })

    t.test(`the import is rate-limited: ${IMPORT_RATE_LIMIT_PER_MINUTE} confirmations a minute`, async (t) => {
      const { app, admin } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      await c.get('/accounts/import')
      const codes: number[] = []
      for (let i = 0; i <= IMPORT_RATE_LIMIT_PER_MINUTE; i++) codes.push((await c.post('/accounts/import/confirm', { payload: 'x', signature: 'y' })).statusCode)
      t.equal(codes.filter((s) => s === 400).length, IMPORT_RATE_LIMIT_PER_MINUTE, 'refused as tampered until the limit')
      t.equal(codes.at(-1), 429, 'then 429')
    })

    // ---- item 4: unreadable bodies are 400, never 5xx --------------------------------

    t.test('unreadable bodies: 400 (or 415), never 5xx, on public, page and API routes', async (t) => {
      const { app, admin } = await setup(t)
      const { header } = await keysFor(app, admin)
      const c = new Client(app)
      await c.signIn(admin.username)
      await c.get('/logos')
      const good = multipartBody({ _csrf: c.csrf, name: 'Logo' })
      const truncated = good.payload.slice(0, good.payload.length - 20)
      const bodies: Array<[string, { payload: string; contentType: string }]> = [
        ['no boundary', { payload: good.payload, contentType: 'multipart/form-data' }],
        ['wrong boundary', { payload: good.payload, contentType: 'multipart/form-data; boundary=nope' }],
        ['truncated', { payload: truncated, contentType: good.contentType }],
        ['no parts', { payload: `--b\r\nContent-Disposition form-data\r\n\r\n${'\u0000'.repeat(10)}`, contentType: 'multipart/form-data; boundary=b' }],
      ]
      const targets: Array<[string, Record<string, string>]> = [
        ['/login', {}],
        ['/logos', c.headers()],
        ['/accounts/import', c.headers()],
        ['/api/users', { 'x-apikeys': header }],
        ['/api/mssp/logos', { 'x-apikeys': header }],
      ]
      for (const [url, headers] of targets) {
        for (const [what, body] of bodies) {
          const res = await app.inject({ method: 'POST', url, payload: body.payload, headers: { ...headers, 'content-type': body.contentType } })
          t.ok([400, 415].includes(res.statusCode), `${url}, ${what}: ${res.statusCode}`)
        }
      }
      const json = await app.inject({ method: 'POST', url: '/api/users', payload: '{"a":', headers: { 'x-apikeys': header, 'content-type': 'application/json' } })
      t.equal(json.statusCode, 400, 'invalid JSON')
      t.match(json.json(), { statusCode: 400, error: 'Bad Request' }, 'json.json() matches { statusCode: 400, error: \'Bad Request\' }')
      const type = await app.inject({ method: 'POST', url: '/api/users', payload: '<x/>', headers: { 'x-apikeys': header, 'content-type': 'application/xml' } })
      t.equal(type.statusCode, 415, 'an unsupported type')
      t.match(type.json(), { statusCode: 415 }, 'type.json() matches { statusCode: 415 }')
      const page = await app.inject({ method: 'POST', url: '/login', payload: good.payload, headers: { 'content-type': 'multipart/form-data; boundary=nope' } })
      t.match(page.headers['content-type'], /text\/html/, 'pages answer with the error page')
    })

    // ---- item 16: NUL and lone surrogates stop at the edge --------------------------

    t.test('NUL bytes and unpaired surrogates are refused at the edge, naming the field', async (t) => {
      const { app, admin } = await setup(t)
      const { header } = await keysFor(app, admin)
      const anonymous = new Client(app)
      await anonymous.get('/login')
      const login = await anonymous.post('/login', { username: 'ada\u0000@example.com', password: 'x' })
      t.equal(login.statusCode, 400, 'anonymous /login')
      t.match(login.body, 'username', 'the answer to POST /login shows \'username\'')
      await anonymous.get('/forgot-password')
      t.equal((await anonymous.post('/forgot-password', { username: 'a\u0000b@example.com' })).statusCode, 400, 'anonymous /forgot-password')

      const c = new Client(app)
      await c.signIn(admin.username)
      const search = await c.get('/accounts?q=%00')
      t.equal(search.statusCode, 400, 'a query string')
      t.match(search.body, '“q”', 'the answer to GET /accounts?q=%00 shows \'“q”\'')
      t.equal((await c.get('/users/%00')).statusCode, 400, 'a path parameter')

      const before = await countUsers(app)
      for (const name of ['Nul\u0000Name', 'Lone \ud800 high', 'Lone \udc00 low']) {
        const res = await app.inject({ method: 'POST', url: '/api/users', headers: { 'x-apikeys': header }, payload: { username: 'new@example.com', password: 'Zebra-42-Cloud-Kite', permissions: 16, name } })
        t.equal(res.statusCode, 400, JSON.stringify(name))
        t.match(res.json(), { statusCode: 400, error: 'Bad Request', errors: [{ path: '/name' }] }, 'res.json() matches the expected fields')
      }
      const nested = await app.inject({ method: 'PUT', url: `/api/users/${admin.id}`, headers: { 'x-apikeys': header }, payload: { name: 'ok', extra: { deep: ['fine', 'bad\u0000'] } } })
      t.match(nested.json(), { statusCode: 400, errors: [{ path: '/extra/deep/1' }] }, 'nested.json() matches { statusCode: 400, errors: [{ path: \'/extra/deep/1\' }] }')
      t.equal((await app.inject({ url: '/api/mssp/accounts?wildcard_text=%00', headers: { 'x-apikeys': header } })).statusCode, 400, 'an API query')
      t.equal(await countUsers(app), before, 'nothing was created')
      const pair = await app.inject({ method: 'PUT', url: `/api/users/${admin.id}`, headers: { 'x-apikeys': header }, payload: { name: 'Ada 😀' } })
      t.equal(pair.statusCode, 200, 'a well-formed surrogate pair is text like any other')
    })
  })
}

t.test('an unreadable multipart body is not logged as an error', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-gate-'))
  const lines: string[] = []
  const config = loadConfig({ NODE_ENV: 'test', DATA_DIR: dataDir, BASE_URL: 'http://portal.test' })
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean))
      done()
    },
  })
  const app = await buildApp(config, { logger: { ...(loggerOptions(config) as object), level: 'info', stream } })
  t.teardown(async () => {
    await app.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
  })
  const { header } = await keysFor(app, await createUser(app, { role: 64 }))
  const res: LightMyRequestResponse = await app.inject({ method: 'POST', url: '/api/mssp/logos', payload: '--b\r\nnonsense', headers: { 'x-apikeys': header, 'content-type': 'multipart/form-data; boundary=b' } })
  t.equal(res.statusCode, 400, 'POST /api/mssp/logos answers 400')
  const errors = lines.map((l) => JSON.parse(l) as { level: number; err?: { stack?: string } }).filter((l) => l.level >= 50 || l.err?.stack)
  t.same(errors, [], 'no error line, no stack')
})
