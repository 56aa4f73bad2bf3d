import t from 'tap'
import { type Tap, Client, PASSWORD, buildTestApp, createUser, dialects } from '../helper.ts'
import { parseApiKeysHeader } from '../../src/areas/api/service.ts'

const A = 'a'.repeat(64)
const S = 'b'.repeat(64)

t.test('X-ApiKeys header parsing', async (t) => {
  const cases: Array<[string, boolean]> = [
    [`accessKey=${A};secretKey=${S}`, true],
    [`accessKey=${A}; secretKey=${S}`, true],
    [`secretKey=${S};accessKey=${A}`, true],
    [` accessKey = ${A} ;  secretKey=${S};`, true],
    [`accessKey=${A}`, false],
    [`accessKey=${A};secretKey=`, false],
    [`accessKey=${A};secretKey=${S};extra=1`, false],
    [`accessKey=${A};accessKey=${A}`, false],
    [`accessKey=${A},secretKey=${S}`, false],
    [`Bearer ${A}`, false],
    [`accessKey=xyz;secretKey=${S}`, false],
    ['', false],
  ]
  for (const [header, ok] of cases) t.equal(parseApiKeysHeader(header) !== null, ok, JSON.stringify(header))
})

for (const dialect of dialects) {
  t.test(`${dialect}: REST API plumbing`, async (t) => {
    async function withKeys(t: Tap, env: Record<string, string> = {}) {
      const { app } = await buildTestApp(t, dialect, env)
      const user = await createUser(app, { name: 'Key Owner', role: 32 })
      const client = new Client(app)
      await client.signIn(user.username)
      await client.get('/accounts')
      const res = await app.inject({ method: 'PUT', url: '/api/session/keys', headers: { ...client.headers(), 'x-csrf-token': client.csrf } })
      const keys = res.json() as { accessKey: string; secretKey: string }
      return { app, user, client, keys, header: `accessKey=${keys.accessKey}; secretKey=${keys.secretKey}` }
    }

    t.test('keys authenticate /api and the unprefixed paths; pages at the same paths are untouched', async (t) => {
      const { app, user, header, keys } = await withKeys(t)
      t.match(keys.accessKey, /^[0-9a-f]{64}$/, 'keys.accessKey matches /^[0-9a-f]{64}$/')
      t.match(keys.secretKey, /^[0-9a-f]{64}$/, 'keys.secretKey matches /^[0-9a-f]{64}$/')
      for (const url of ['/api/session', '/session']) {
        const res = await app.inject({ url, headers: { 'x-apikeys': header } })
        t.equal(res.statusCode, 200, url)
        t.match(res.json(), { uuid: user.uuid, id: user.id, username: user.username, user_name: user.username, permissions: 32, type: 'local', enabled: true }, 'res.json() matches the expected fields')
      }
      const page = await app.inject({ url: '/session' })
      t.equal(page.statusCode, 404, 'without keys, /session is no API route')
      t.match(page.headers['content-type'], /text\/html/, 'page.headers[\'content-type\'] matches /text\\/html/')
    })

    t.test('the secret is stored only as a keyed hash, and last use is recorded', async (t) => {
      const { app, user, header, keys } = await withKeys(t)
      const row = await app.db.selectFrom('api_keys').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow()
      t.not(row.secret_hash, keys.secretKey, `row.secret_hash is not ${keys.secretKey}`)
      t.notMatch(JSON.stringify(row), keys.secretKey, `JSON.stringify(row) does not match ${keys.secretKey}`)
      t.equal(row.last_used_at, null, 'row.last_used_at is null')
      await app.inject({ url: '/api/session', headers: { 'x-apikeys': header } })
      const after = await app.db.selectFrom('api_keys').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow()
      t.ok(after.last_used_at, 'after.last_used_at')
      const me = await app.inject({ url: '/api/session', headers: { 'x-apikeys': header } })
      t.equal(me.json().last_apikey_access, after.last_used_at, `me.json().last_apikey_access is ${after.last_used_at}`)
    })

    t.test('anything but valid keys gets the uniform 401', async (t) => {
      const { app, keys } = await withKeys(t)
      const headers: Array<Record<string, string>> = [
        {},
        { 'x-apikeys': `accessKey=${keys.accessKey}; secretKey=${'0'.repeat(64)}` },
        { 'x-apikeys': `accessKey=${'0'.repeat(64)}; secretKey=${keys.secretKey}` },
        { 'x-apikeys': 'garbage' },
        { 'x-apikeys': `accessKey=${keys.accessKey}` },
      ]
      for (const h of headers) {
        const res = await app.inject({ url: '/api/session', headers: h })
        t.equal(res.statusCode, 401, JSON.stringify(h))
        t.same(Object.keys(res.json()).sort(), ['error', 'message', 'statusCode'], 'Object.keys(res.json()).sort() is [\'error\', \'message\', \'statusCode\']')
        t.match(res.json(), { statusCode: 401, error: 'Unauthorized' }, 'res.json() matches { statusCode: 401, error: \'Unauthorized\' }')
      }
    })

    t.test('new keys replace the old ones at once; a disabled user\'s keys fail at once', async (t) => {
      const { app, user, header, client } = await withKeys(t)
      const fresh = await app.inject({ method: 'PUT', url: '/api/session/keys', headers: { 'x-apikeys': header } })
      t.equal(fresh.statusCode, 200, 'PUT /api/session/keys answers 200')
      const k = fresh.json()
      t.equal((await app.inject({ url: '/api/session', headers: { 'x-apikeys': header } })).statusCode, 401, 'old keys refused')
      const newHeader = `secretKey=${k.secretKey};accessKey=${k.accessKey}`
      t.equal((await app.inject({ url: '/api/session', headers: { 'x-apikeys': newHeader } })).statusCode, 200, 'GET /api/session answers 200')
      await app.db.updateTable('users').set({ enabled: 0 }).where('id', '=', user.id).execute()
      t.equal((await app.inject({ url: '/api/session', headers: { 'x-apikeys': newHeader } })).statusCode, 401, 'GET /api/session answers 401')
      void client
    })

    t.test('CSRF applies to cookie calls and not to key calls', async (t) => {
      const { app, client, header } = await withKeys(t)
      const noToken = await app.inject({ method: 'PUT', url: '/api/session/keys', headers: client.headers() })
      t.equal(noToken.statusCode, 403, 'PUT /api/session/keys answers 403')
      t.match(noToken.json(), { statusCode: 403, error: 'Forbidden' }, 'noToken.json() matches { statusCode: 403, error: \'Forbidden\' }')
      const keyCall = await app.inject({ method: 'PUT', url: '/api/session/keys', headers: { 'x-apikeys': header } })
      t.equal(keyCall.statusCode, 200, 'PUT /api/session/keys answers 200')
    })

    t.test('chpasswd takes JSON and plain form posts, checks the current password and the policy', async (t) => {
      const { app, user, header, client } = await withKeys(t)
      const bad = await app.inject({ method: 'PUT', url: '/api/session/chpasswd', headers: { 'x-apikeys': header }, payload: { password: 5 } })
      t.equal(bad.statusCode, 400, 'PUT /api/session/chpasswd answers 400')
      t.ok(bad.json().errors.length >= 1, 'says what was wrong')
      const wrong = await app.inject({ method: 'PUT', url: '/api/session/chpasswd', headers: { 'x-apikeys': header }, payload: { password: 'New-Password-2024x', current_password: 'nope' } })
      t.equal(wrong.statusCode, 400, 'PUT /api/session/chpasswd answers 400')
      t.match(wrong.json().message, 'current password', 'wrong.json().message matches \'current password\'')
      const weak = await app.inject({ method: 'PUT', url: '/api/session/chpasswd', headers: { 'x-apikeys': header }, payload: { password: 'short', current_password: PASSWORD } })
      t.equal(weak.statusCode, 400, 'PUT /api/session/chpasswd answers 400')
      t.match(weak.json().message, '12 characters', 'weak.json().message matches \'12 characters\'')
      const form = await app.inject({
        method: 'PUT', url: '/session/chpasswd',
        headers: { 'x-apikeys': header, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ password: 'Brand-New-Pass-77', current_password: PASSWORD }).toString(),
      })
      t.equal(form.statusCode, 200, 'PUT /session/chpasswd answers 200')
      t.equal((await client.get('/accounts')).statusCode, 303, 'other sessions ended')
      const again = new Client(app)
      t.equal((await again.signIn(user.username, 'Brand-New-Pass-77')).statusCode, 303, 'signing in answers 303')
    })

    t.test('rate limiting answers 429 with Retry-After', async (t) => {
      const { app, header } = await withKeys(t, { API_RATE_LIMIT_PER_MINUTE: '3' })
      const codes: number[] = []
      let last
      for (let i = 0; i < 5; i++) {
        last = await app.inject({ url: '/api/session', headers: { 'x-apikeys': header } })
        codes.push(last.statusCode)
      }
      t.same(codes, [200, 200, 200, 429, 429], 'codes is [200, 200, 200, 429, 429]')
      t.ok(Number(last!.headers['retry-after']) > 0, 'Number(last.headers[\'retry-after\']) > 0')
      t.match(last!.json(), { statusCode: 429, error: 'Too Many Requests' }, 'last.json() matches { statusCode: 429, error: \'Too Many Requests\' }')
    })

    t.test('the OpenAPI document lists every /api route', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const res = await app.inject({ url: '/api/openapi.json' })
      t.equal(res.statusCode, 200, 'GET /api/openapi.json answers 200')
      const doc = res.json() as { openapi: string; paths: Record<string, Record<string, unknown>> }
      t.match(doc.openapi, /^3\./, 'doc.openapi matches /^3\\./')
      const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`))
      t.ok(app.apiRoutes.length >= 3, 'app.apiRoutes.length >= 3')
      t.same(documented.sort(), [...app.apiRoutes].sort(), 'documented.sort() is [...app.apiRoutes].sort()')
      t.notOk(Object.keys(doc.paths).some((p) => !p.startsWith('/api/')), 'pages are not in the API document')
      const docs = await app.inject({ url: '/api/docs/' })
      t.equal(docs.statusCode, 200, 'GET /api/docs/ answers 200')
    })
  })
}
