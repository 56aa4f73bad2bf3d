import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { BASIC, ADMINISTRATOR, Client, PASSWORD, buildTestApp, createUser, dialects } from '../helper.ts'
import { findUserById } from '../../src/areas/auth/repository.ts'

function header(res: LightMyRequestResponse, name: string): string {
  const value = res.headers[name]
  return Array.isArray(value) ? value.join(', ') : String(value ?? '')
}

function varyList(res: LightMyRequestResponse): string[] {
  return header(res, 'vary').split(',').map((v) => v.trim().toLowerCase())
}

/** No stack frames, file paths or error class names in a page a user sees. */
function assertNoInternals(t: Pick<Test, 'notMatch'>, body: string) {
  t.notMatch(body, /\bat [\w.<>]+ \(|\.ts:\d+|node_modules|[A-Za-z]+Error\b|\/src\//, 'no stack trace or internals')
}

for (const dialect of dialects) {
  t.test(`${dialect}: security`, async (t) => {
    t.test('security headers on the Log in page and on a signed-in page', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const client = new Client(app)
      const login = await client.get('/login')
      await client.signIn(user.username)
      const accounts = await client.get('/accounts')
      t.equal(accounts.statusCode, 200, 'GET /accounts answers 200')
      for (const [name, res] of [['Log in', login], ['Accounts', accounts]] as const) {
        const csp = header(res, 'content-security-policy')
        t.match(csp, "frame-ancestors 'none'", `${name}: may not be framed (clickjacking)`)
        t.match(csp, /script-src 'self'(;|$)/, `${name}: scripts only from the portal`)
        t.notMatch(csp, /unsafe-inline|unsafe-eval/, `${name}: no inline scripts or eval`)
        t.equal(header(res, 'x-content-type-options'), 'nosniff', name)
        t.match(header(res, 'referrer-policy'), /^(same-origin|no-referrer|strict-origin(-when-cross-origin)?)$/, `${name}: Referrer-Policy`)
        t.ok(varyList(res).includes('hx-request'), `${name}: Vary includes HX-Request`)
        t.notOk(res.headers['x-powered-by'], `${name}: no X-Powered-By`)
      }
      t.equal(header(accounts, 'cache-control'), 'no-store', 'signed-in pages are never cached')
      const help = await client.get('/help/getting-started')
      t.equal(header(help, 'cache-control'), 'no-store', 'header(help, \'cache-control\') is \'no-store\'')
      t.notOk(login.headers['strict-transport-security'], 'no HSTS on a plain-HTTP base URL')
    })

    t.test('on an https BASE_URL the cookie is Secure and HSTS is sent', async (t) => {
      const { app } = await buildTestApp(t, dialect, { BASE_URL: 'https://portal.test' })
      const user = await createUser(app)
      const client = new Client(app)
      const res = await client.signIn(user.username)
      const cookie = header(res, 'set-cookie')
      t.match(cookie, /mssp_session=/, 'cookie matches /mssp_session=/')
      t.match(cookie, /;\s*Secure/i, 'cookie matches /;\\s*Secure/i')
      t.match(cookie, /;\s*HttpOnly/i, 'cookie matches /;\\s*HttpOnly/i')
      t.match(cookie, /;\s*SameSite=Lax/i, 'cookie matches /;\\s*SameSite=Lax/i')
      t.match(header(await client.get('/login'), 'strict-transport-security'), /max-age=\d{7,}/, 'header(…) matches /max-age=\\d{7,}/')
    })

    t.test('the session cookie is HttpOnly and SameSite=Lax on http too', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const res = await new Client(app).signIn(user.username)
      const cookie = header(res, 'set-cookie')
      t.match(cookie, /;\s*HttpOnly/i, 'cookie matches /;\\s*HttpOnly/i')
      t.match(cookie, /;\s*SameSite=Lax/i, 'cookie matches /;\\s*SameSite=Lax/i')
      t.notMatch(cookie, /;\s*Secure/i, 'not Secure on plain http (the browser would drop it)')
    })

    t.test('htmx gets the table fragment; a normal request the full page', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const client = new Client(app)
      await client.signIn(user.username)
      const full = await client.get('/accounts')
      t.match(full.body, /^<!doctype html>/i, 'the answer to GET /accounts shows /^<!doctype html>/i')
      t.match(full.body, '<html', 'the answer to GET /accounts shows \'<html\'')
      t.match(full.body, '<header', 'with the navigation')
      t.match(full.body, /<table[\s\S]*Customer accounts/, 'and the table')
      const fragment = await client.get('/accounts', { 'hx-request': 'true' })
      t.equal(fragment.statusCode, 200, 'GET /accounts answers 200')
      t.notMatch(fragment.body, /<html|<!doctype/i, 'no page around it')
      t.notMatch(fragment.body, '<header', 'no navigation')
      t.notMatch(fragment.body, '<h1>Accounts</h1>', 'no page heading')
      t.match(fragment.body, /<table[\s\S]*Customer accounts/, 'only the table')
      t.ok(varyList(fragment).includes('hx-request'), 'varyList(fragment).includes(\'hx-request\')')
      const boosted = await client.get('/accounts', { 'hx-request': 'true', 'hx-boosted': 'true' })
      t.match(boosted.body, '<html', 'a boosted link gets the full page')
    })

    t.test('POST /login without a CSRF token is refused and signs nobody in', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const client = new Client(app)
      await client.get('/login')
      for (const [name, csrf] of [['no token', undefined], ['empty token', ''], ['wrong token', 'x'.repeat(43)]] as const) {
        const form = new URLSearchParams({ username: user.username, password: PASSWORD, ...(csrf === undefined ? {} : { _csrf: csrf }) })
        const res = await app.inject({
          method: 'POST', url: '/login', payload: form.toString(),
          headers: { cookie: client.cookie, 'content-type': 'application/x-www-form-urlencoded' },
        })
        t.equal(res.statusCode, 403, name)
        t.match(res.body, 'This form has expired', name)
        t.notMatch(header(res, 'location'), '/accounts', name)
      }
      t.equal((await app.db.selectFrom('sessions').selectAll().execute()).length, 0, 'no session was started')
      const row = await findUserById(app.db, user.id)
      t.equal(row!.last_login_at, null, 'row.last_login_at is null')
      t.equal(row!.failed_login_count, 0, 'not even counted as an attempt')
      t.equal((await client.get('/accounts')).statusCode, 303, 'still signed out')
    })

    t.test("another visitor's CSRF token does not work", async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const attacker = new Client(app)
      await attacker.get('/login')
      const victim = new Client(app)
      await victim.get('/login')
      victim.csrf = attacker.csrf
      const res = await victim.post('/login', { username: user.username, password: PASSWORD })
      t.equal(res.statusCode, 403, 'POST /login answers 403')
    })

    t.test('POST /logout without a CSRF token is refused and the session goes on', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const client = new Client(app)
      await client.signIn(user.username)
      await client.get('/accounts')
      const res = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: client.cookie } })
      t.equal(res.statusCode, 403, 'POST /logout answers 403')
      t.equal((await client.get('/accounts')).statusCode, 200, 'still signed in')
      t.equal((await app.db.selectFrom('sessions').selectAll().execute()).length, 1, 'the sessions rows\' count is 1')
      const viaHeader = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: client.cookie, 'x-csrf-token': client.csrf, 'hx-request': 'true' } })
      t.equal(viaHeader.statusCode, 204, 'htmx sends the token in a header')
      t.equal(viaHeader.headers['hx-redirect'], '/login?m=signed-out', 'viaHeader.headers[\'hx-redirect\'] is \'/login?m=signed-out\'')
      t.equal((await client.get('/accounts')).statusCode, 303, 'signed out')
    })

    t.test('an unknown page is the generic error page, without internals', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const anonymous = await new Client(app).get('/no-such-page')
      t.equal(anonymous.statusCode, 404, 'GET /no-such-page answers 404')
      t.match(anonymous.body, '<html', 'the answer to GET /no-such-page shows \'<html\'')
      t.match(anonymous.body, 'Not Found', 'the answer to GET /no-such-page shows \'Not Found\'')
      t.match(anonymous.body, 'The page or object you asked for does not exist.', 'the answer to GET /no-such-page shows \'The page or object you asked for does not exist.\'')
      t.match(anonymous.body, 'href="/login"', 'offers a way back')
      assertNoInternals(t, anonymous.body)
      t.match(header(anonymous, 'content-security-policy'), "frame-ancestors 'none'", 'error pages carry the headers too')
      const client = new Client(app)
      await client.signIn(user.username)
      for (const url of ['/no-such-page', '/help/no-such-topic', '/help/constructor', '/help/__proto__', '/static/../package.json', '/static/htmx/htmx.js']) {
        const res = await client.get(url)
        t.equal(res.statusCode, 404, url)
        t.match(res.body, 'does not exist', url)
        t.notMatch(res.body, '"name": "mssp-portal"', `${url}: no file outside the public folders`)
        assertNoInternals(t, res.body)
      }
      const htmx = await client.get('/static/htmx/htmx.min.js')
      t.equal(htmx.statusCode, 200, 'htmx itself is served')
    })

    t.test('over-long form fields are refused like other bad input, not a server error', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const cases: Array<[string, Record<string, string>]> = [
        ['/login', { username: user.username, password: 'x'.repeat(1001) }],
        ['/login', { username: 'a'.repeat(301), password: PASSWORD }],
        ['/forgot-password', { username: 'a'.repeat(301) }],
      ]
      for (const [url, form] of cases) {
        const client = new Client(app)
        await client.get(url === '/login' ? '/login' : '/forgot-password')
        const res = await client.post(url, form)
        t.ok(res.statusCode >= 400 && res.statusCode < 500, `${url}: a 4xx answer (got ${res.statusCode})`)
        t.notMatch(res.body, 'Something went wrong on our side', url)
        assertNoInternals(t, res.body)
      }
    })

    t.test('sign-in follows next= only to paths of the portal, however they are spelled', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      for (const next of ['//evil.example/', '/\\evil.example', '/\t/evil.example', '/\n/evil.example', '/\r\n/evil.example', 'https://evil.example/', '/%09/evil.example']) {
        const client = new Client(app)
        await client.get(`/login?next=${encodeURIComponent(next)}`)
        const res = await client.post('/login', { username: user.username, password: PASSWORD, next })
        t.equal(res.statusCode, 303, `${JSON.stringify(next)}: signed in`)
        const location = String(res.headers.location ?? '')
        // Resolve the Location as a browser does (the WHATWG URL parser drops tabs and newlines).
        t.equal(new URL(location, 'http://portal.test/login').host, 'portal.test', `${JSON.stringify(next)}: stays on the portal (${JSON.stringify(location)})`)
      }
    })

    t.test('a GET never changes state', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const client = new Client(app)
      await client.signIn(user.username)
      const res = await client.get('/logout')
      t.equal(res.statusCode, 404, 'GET /logout does not exist')
      t.equal((await client.get('/accounts')).statusCode, 200, 'the session still works')
      await client.get(`/forgot-password?username=${encodeURIComponent(user.username)}`)
      t.equal((await app.db.selectFrom('outbox').selectAll().execute()).length, 0, 'GET /forgot-password sends nothing')
      await client.get(`/login?username=${encodeURIComponent(user.username)}&password=wrong`)
      t.equal((await findUserById(app.db, user.id))!.failed_login_count, 0, 'GET /login with credentials tries nothing')
    })

    t.test('Basic users see no Users or Logos links; Administrators do', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const basic = await createUser(app, { role: BASIC, name: 'Bea Basic' })
      const admin = await createUser(app, { role: ADMINISTRATOR, name: 'Ada Admin' })
      const basicClient = new Client(app)
      await basicClient.signIn(basic.username)
      const basicPage = await basicClient.get('/accounts')
      t.equal(basicPage.statusCode, 200, 'GET /accounts answers 200')
      t.match(basicPage.body, 'href="/accounts"', 'the answer to GET /accounts shows \'href="/accounts"\'')
      t.notMatch(basicPage.body, 'href="/users"', 'no Users link for Basic')
      t.notMatch(basicPage.body, 'href="/logos"', 'no Logos link for Basic')
      t.match(basicPage.body, 'Basic', 'the role is shown in the user menu')
      const adminClient = new Client(app)
      await adminClient.signIn(admin.username)
      const adminPage = await adminClient.get('/accounts')
      t.match(adminPage.body, 'href="/users"', 'the answer to GET /accounts shows \'href="/users"\'')
      t.match(adminPage.body, 'href="/logos"', 'the answer to GET /accounts shows \'href="/logos"\'')
      t.match(adminPage.body, 'Administrator', 'the answer to GET /accounts shows \'Administrator\'')
    })

    t.test('the Resource Center is served by the portal to signed-in users', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const signedOut = await new Client(app).get('/help/getting-started')
      t.equal(signedOut.statusCode, 303, 'signed out: to Log in')
      t.equal(signedOut.headers.location, '/login?next=%2Fhelp%2Fgetting-started', 'GET /help/getting-started redirects to \'/login?next=%2Fhelp%2Fgetting-started\'')
      const client = new Client(app)
      await client.signIn(user.username)
      const accounts = await client.get('/accounts')
      t.match(accounts.body, 'Resource Center', 'the answer to GET /accounts shows \'Resource Center\'')
      t.match(accounts.body, 'href="/help/getting-started"', 'linked from every page')
      const res = await client.get('/help/getting-started')
      t.equal(res.statusCode, 200, 'GET /help/getting-started answers 200')
      t.match(res.body, '<h1>Getting started</h1>', 'the answer to GET /help/getting-started shows \'<h1>Getting started</h1>\'')
      t.match(res.body, 'Forgot Password', 'the answer to GET /help/getting-started shows \'Forgot Password\'')
      t.notMatch(res.body, /https?:\/\/(?!portal\.test)/, 'no links off the portal (works offline)')
    })
  })
}

