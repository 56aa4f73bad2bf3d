// The demo customer instance (src/demo-instance): the instance side of single sign-on and
// of the user transfer, as docs/sso.md describes them. No database: the test plays the
// portal, signing assertions with its own Ed25519 key and posting them with app.inject.
import crypto from 'node:crypto'
import t from 'tap'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import formbody from '@fastify/formbody'
import { PNG } from 'pngjs'
import { SignJWT, base64url, exportJWK, exportSPKI, generateKeyPair, type JWK } from 'jose'
import { buildDemoInstance, demoInstancePlugin, MemoryJtiStore, ROLE_RULES, type DemoInstanceOptions } from '../../src/demo-instance/app.ts'
import { SessionStore, IDLE_MS } from '../../src/demo-instance/sessions.ts'

const PORTAL = 'http://portal.test'
const ORIGIN = 'http://instance.test'
const RETURN_URL = `${PORTAL}/accounts`
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })
const other = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })
const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: 'portal-2026-1', alg: 'EdDSA', use: 'sig' }
const rotatedJwk: JWK = { ...(await exportJWK(other.publicKey)), kid: 'portal-2026-0', alg: 'EdDSA', use: 'sig' }
const JWKS = { keys: [publicJwk] }

const ACCOUNT = { uuid: crypto.randomUUID(), name: 'Acme Manufacturing' }
const DANA = { sub: crypto.randomUUID(), name: 'Dana Whitfield', preferred_username: 'dana@mssp.example' }
const SAM = { sub: crypto.randomUUID(), name: 'Sam Okafor', preferred_username: 'sam@mssp.example' }
const ALEX = { sub: crypto.randomUUID(), name: 'Alex Admin', preferred_username: 'alex@mssp.example' }

const ROLE = (level: 16 | 24 | 32 | 40 | 64) => ({ level, label: ROLE_RULES[level].label })

function pngDataUrl(): { url: string; bytes: Buffer } {
  const png = new PNG({ width: 8, height: 8 })
  png.data.fill(200)
  const bytes = PNG.sync.write(png)
  return { url: `data:image/png;base64,${bytes.toString('base64')}`, bytes }
}

const now = () => Math.floor(Date.now() / 1000)

interface SignOptions {
  key?: CryptoKey | Uint8Array
  alg?: string
  kid?: string | null
  omit?: string[]
}

/** A compact JWT, as the portal would sign it (claims override the defaults). */
async function sign(claims: Record<string, unknown>, o: SignOptions = {}): Promise<string> {
  const payload: Record<string, unknown> = { ...claims }
  for (const claim of o.omit ?? []) delete payload[claim]
  const kid = o.kid === undefined ? publicJwk.kid : o.kid
  return new SignJWT(payload).setProtectedHeader({ alg: o.alg ?? 'EdDSA', ...(kid === null ? {} : { kid }) }).sign(o.key ?? privateKey)
}

function signInClaims(over: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = now()
  return {
    iss: PORTAL,
    aud: ORIGIN,
    sub: DANA.sub,
    name: DANA.name,
    preferred_username: DANA.preferred_username,
    role: ROLE(32),
    account: ACCOUNT,
    interface: 'vm',
    logo: null,
    return_url: RETURN_URL,
    iat,
    exp: iat + 60,
    jti: crypto.randomUUID(),
    ...over,
  }
}

function transferClaims(over: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = now()
  return { iss: PORTAL, aud: ORIGIN, typ: 'user-transfer', sub: DANA.sub, successor: SAM, iat, exp: iat + 300, jti: crypto.randomUUID(), ...over }
}

function unsigned(claims: Record<string, unknown>): string {
  const enc = (v: unknown) => base64url.encode(JSON.stringify(v))
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`
}

function build(over: Partial<DemoInstanceOptions> = {}): FastifyInstance {
  return buildDemoInstance({ portalUrl: PORTAL, jwks: JWKS, origin: ORIGIN, basePath: '', ...over })
}

function header(res: LightMyRequestResponse, name: string): string {
  const value = res.headers[name]
  return Array.isArray(value) ? value.join(', ') : String(value ?? '')
}

function postAssertion(app: FastifyInstance, assertion: string | undefined, base = '', headers: Record<string, string> = {}) {
  const body = assertion === undefined ? '' : new URLSearchParams({ assertion }).toString()
  return app.inject({ method: 'POST', url: `${base}/mssp/sso`, headers: { ...FORM, ...headers }, payload: body })
}

function postTransfer(app: FastifyInstance, message: unknown, base = '') {
  return app.inject({ method: 'POST', url: `${base}/mssp/user-transfer`, payload: { message } })
}

interface Browser {
  cookie: string
  get(url: string): Promise<LightMyRequestResponse>
  post(url: string, fields?: Record<string, string>, headers?: Record<string, string>): Promise<LightMyRequestResponse>
  csrf(): Promise<string>
}

/** Signs in with a fresh assertion and returns a tiny cookie-carrying client. */
async function signIn(app: FastifyInstance, over: Record<string, unknown> = {}, base = ''): Promise<Browser & { res: LightMyRequestResponse }> {
  const res = await postAssertion(app, await sign(signInClaims(over)), base)
  if (res.statusCode !== 303) throw new Error(`sign-in failed: ${res.statusCode} ${res.body}`)
  const cookie = header(res, 'set-cookie').split(';')[0]
  const iface = (over.interface as string | undefined) ?? 'vm'
  const browser: Browser = {
    cookie,
    get: (url) => app.inject({ method: 'GET', url, headers: { cookie } }),
    post: (url, fields = {}, headers = {}) => app.inject({ method: 'POST', url, headers: { ...FORM, cookie, ...headers }, payload: new URLSearchParams(fields).toString() }),
    csrf: async () => /name="_csrf" value="([^"]+)"/.exec((await browser.get(`${base}/${iface}`)).body)![1],
  }
  return { ...browser, res }
}

/** The scan ids on a page, by name. */
function scanIds(body: string): Map<string, string> {
  const ids = new Map<string, string>()
  for (const m of body.matchAll(/<tr[^>]*>\s*<td>([^<]+)<\/td>[\s\S]*?(?:\/scans\/([0-9a-f-]{36})\/(?:launch|edit)|<\/tr>)/g)) if (m[2]) ids.set(m[1], m[2])
  return ids
}

t.test('a good assertion opens a session and lands on the interface with the overlay', async (t) => {
  const app = build()
  t.teardown(() => app.close())
  const logo = pngDataUrl()
  const res = await postAssertion(app, await sign(signInClaims({ logo: logo.url })))
  t.equal(res.statusCode, 303, 'postAssertion(…) answers 303')
  t.equal(res.headers.location, '/vm', 'redirects to the interface the assertion names')
  const cookie = header(res, 'set-cookie')
  t.match(cookie, /^demo_instance_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax$/, 'HttpOnly session cookie on the instance path, not Secure over http')

  const page = await app.inject({ url: '/vm', headers: { cookie: cookie.split(';')[0] } })
  t.equal(page.statusCode, 200, 'GET /vm answers 200')
  const body = page.body
  t.match(body, 'class="mssp-frame"', 'the blue MSSP overlay')
  for (const edge of ['mssp-bar', 'mssp-edge-left', 'mssp-edge-right', 'mssp-edge-bottom']) t.match(body, `class="${edge === 'mssp-bar' ? edge : `mssp-edge ${edge}`}"`, `overlay: ${edge}`)
  t.match(body, 'Signed in through the MSSP Portal as <strong>Dana Whitfield</strong> (dana@mssp.example)', 'who came through the portal')
  t.match(body, '<span class="mssp-role">VM Standard</span>', 'their role')
  t.notMatch(body, 'assisted by', 'no assist when there is no act claim')
  t.match(body, `<a class="mssp-back" href="${RETURN_URL}">Back to MSSP Portal</a>`, 'the way back to the portal')
  t.match(body, '<img class="account-logo" src="/account-logo" alt="Acme Manufacturing logo"', 'the account logo in the header')
  t.match(body, 'Demo instance', 'clearly a demo')
  t.match(body, /<details class="user-menu">[\s\S]*Dana Whitfield[\s\S]*<form method="post" action="\/mssp\/leave">[\s\S]*Leave User/, 'user menu with Leave User')
  t.match(body, '<h1>Vulnerability Management</h1>', 'body matches \'<h1>Vulnerability Management</h1>\'')
  t.match(body, 'Dana’s branch office scan', 'the signed-in user’s own objects are there')
  t.match(body, 'Weekly external perimeter', 'and colleagues’ objects')

  const logoRes = await app.inject({ url: '/account-logo', headers: { cookie: cookie.split(';')[0] } })
  t.equal(logoRes.statusCode, 200, 'GET /account-logo answers 200')
  t.equal(logoRes.headers['content-type'], 'image/png', 'logoRes.headers[\'content-type\'] is \'image/png\'')
  t.same(logoRes.rawPayload, logo.bytes, 'the logo from the claim, byte for byte')
  t.equal((await app.inject({ url: '/account-logo' })).statusCode, 404, 'no logo without a session')

  const css = await app.inject({ url: '/static/demo-instance.css' })
  t.equal(css.statusCode, 200, 'GET /static/demo-instance.css answers 200')
  t.match(css.headers['content-type'], /text\/css/, 'css.headers[\'content-type\'] matches /text\\/css/')
})

t.test('interfaces, the neutral logo, and assisting', async (t) => {
  const app = build()
  t.teardown(() => app.close())
  for (const [code, title] of [['vm', 'Vulnerability Management'], ['was', 'Web Application Scanning'], ['cs', 'Container Security']] as const) {
    const b = await signIn(app, { interface: code })
    t.equal(b.res.headers.location, `/${code}`, `${code}: lands on its interface`)
    const page = await b.get(`/${code}`)
    t.match(page.body, `<h1>${title}</h1>`, `the answer to GET /${code} shows <h1>${title}</h1>`)
    t.match(page.body, `<a href="/${code}" aria-current="page">${title}</a>`, `the answer to GET /${code} shows <a href="/${code}" aria-current="page">${title}</a>`)
    t.match(page.body, 'src="/static/default-logo.svg" alt="Acme Manufacturing logo"', `${code}: neutral logo when logo is null`)
    t.equal((await b.get('/')).headers.location, `/${code}`, 'the root goes to the session’s interface')
  }
  const assisted = await signIn(app, { act: ALEX })
  const page = await assisted.get('/vm')
  t.match(page.body, '<span class="mssp-assist">assisted by <strong>Alex Admin</strong> (alex@mssp.example)</span>', 'assisted by the Administrator')
  t.match(page.body, 'Signed in through the MSSP Portal as <strong>Dana Whitfield</strong>', 'as the assisted user')

  const hostile = await signIn(app, { name: '<script>alert(1)</script>', account: { uuid: ACCOUNT.uuid, name: '"><img src=x onerror=alert(1)>' } })
  const escaped = (await hostile.get('/vm')).body
  t.notMatch(escaped, '<script>alert(1)</script>', 'names are escaped')
  t.notMatch(escaped, '<img src=x', 'account names are escaped')
  t.match(escaped, '&lt;script&gt;alert(1)&lt;/script&gt;', 'escaped matches \'&lt;script&gt;alert(1)&lt;/script&gt;\'')
})

t.test('refusals: each bad assertion gets a page with the reason and a link back', async (t) => {
  const app = build()
  t.teardown(() => app.close())
  const good = signInClaims()
  const valid = await sign(good)
  const [h, p, s] = valid.split('.')
  const tamperedPayload = base64url.encode(JSON.stringify({ ...good, role: ROLE(64) }))
  const spki = new TextEncoder().encode(await exportSPKI(publicKey))
  const iat = now()

  const cases: Array<{ name: string; token: string | undefined; status: number; code: string; reason: RegExp }> = [
    { name: 'no assertion field', token: undefined, status: 400, code: 'missing_assertion', reason: /carried no sign-in assertion/ },
    { name: 'not a JWT', token: 'hello', status: 400, code: 'malformed', reason: /not a signed token/ },
    { name: 'garbage header', token: 'a.b.c', status: 400, code: 'malformed', reason: /header cannot be read/ },
    { name: 'expired', token: await sign(signInClaims({ iat: iat - 120, exp: iat - 60 })), status: 401, code: 'expired', reason: /has expired/ },
    { name: 'expired 6 s ago (beyond the 5 s tolerance)', token: await sign(signInClaims({ iat: iat - 66, exp: iat - 6 })), status: 401, code: 'expired', reason: /expired/ },
    { name: 'lifetime over 60 s', token: await sign(signInClaims({ iat, exp: iat + 61 })), status: 401, code: 'lifetime_too_long', reason: /valid for 61 seconds; the instance accepts at most 60/ },
    { name: 'issued in the future', token: await sign(signInClaims({ iat: iat + 30, exp: iat + 60 })), status: 401, code: 'issued_in_future', reason: /in the future/ },
    { name: 'wrong audience', token: await sign(signInClaims({ aud: 'http://other-instance.test' })), status: 401, code: 'wrong_audience', reason: /meant for http:\/\/other-instance\.test, not for this instance \(http:\/\/instance\.test\)/ },
    { name: 'audience with a path', token: await sign(signInClaims({ aud: `${ORIGIN}/mssp/sso` })), status: 401, code: 'wrong_audience', reason: /not for this instance/ },
    { name: 'wrong issuer', token: await sign(signInClaims({ iss: 'http://evil.test' })), status: 401, code: 'wrong_issuer', reason: /issued by http:\/\/evil\.test, not by the portal this instance trusts \(http:\/\/portal\.test\)/ },
    { name: 'tampered payload', token: `${h}.${tamperedPayload}.${s}`, status: 401, code: 'bad_signature', reason: /signature does not verify/ },
    { name: 'tampered signature', token: `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`, status: 401, code: 'bad_signature', reason: /signature does not verify/ },
    { name: 'signed by another key under the portal’s kid', token: await sign(signInClaims(), { key: other.privateKey }), status: 401, code: 'bad_signature', reason: /signature does not verify/ },
    { name: 'unknown kid', token: await sign(signInClaims(), { kid: 'someone-else' }), status: 401, code: 'unknown_key', reason: /key the portal does not publish/ },
    { name: 'no kid', token: await sign(signInClaims(), { kid: null }), status: 401, code: 'missing_kid', reason: /names no key \(kid\)/ },
    { name: 'alg none (unsigned)', token: unsigned(signInClaims()), status: 401, code: 'unsigned', reason: /not signed/ },
    { name: 'alg none with a signature part', token: `${unsigned(signInClaims())}${s}`, status: 401, code: 'unsigned', reason: /not signed/ },
    { name: 'HS256 with the public key as the secret', token: await sign(signInClaims(), { alg: 'HS256', key: spki }), status: 401, code: 'algorithm_not_allowed', reason: /signed with HS256; the instance accepts only EdDSA/ },
    { name: 'HS256 with the JWK x as the secret', token: await sign(signInClaims(), { alg: 'HS256', key: base64url.decode(publicJwk.x!) }), status: 401, code: 'algorithm_not_allowed', reason: /HS256/ },
    { name: 'a user-transfer message as a sign-in', token: await sign({ ...transferClaims(), ...signInClaims(), typ: 'user-transfer' }), status: 400, code: 'wrong_type', reason: /not a sign-in assertion/ },
    { name: 'role level unknown', token: await sign(signInClaims({ role: { level: 99, label: 'Root' } })), status: 400, code: 'invalid_claim', reason: /“role” claim is not valid: level must be 16, 24, 32, 40 or 64/ },
    { name: 'role label does not match', token: await sign(signInClaims({ role: { level: 16, label: 'Administrator' } })), status: 400, code: 'invalid_claim', reason: /label does not match the level/ },
    { name: 'interface unknown', token: await sign(signInClaims({ interface: 'ot' })), status: 400, code: 'invalid_claim', reason: /“interface” claim is not valid/ },
    { name: 'sub not a uuid', token: await sign(signInClaims({ sub: 'dana' })), status: 400, code: 'invalid_claim', reason: /“sub” claim/ },
    { name: 'return_url off the portal', token: await sign(signInClaims({ return_url: 'https://evil.test/accounts' })), status: 400, code: 'invalid_claim', reason: /“return_url” claim points outside the portal/ },
    { name: 'logo not a PNG data URL', token: await sign(signInClaims({ logo: 'https://cdn.test/logo.png' })), status: 400, code: 'invalid_claim', reason: /“logo” claim is not valid: it must be a data:image\/png;base64 URL or null/ },
    { name: 'logo data URL that is not a PNG', token: await sign(signInClaims({ logo: `data:image/png;base64,${Buffer.from('GIF89a-not-a-png').toString('base64')}` })), status: 400, code: 'invalid_claim', reason: /not a PNG image/ },
    { name: 'act without a name', token: await sign(signInClaims({ act: { sub: ALEX.sub } })), status: 400, code: 'invalid_claim', reason: /“act\.name” claim/ },
  ]
  for (const claim of ['iss', 'aud', 'sub', 'name', 'preferred_username', 'role', 'account', 'interface', 'logo', 'return_url', 'iat', 'exp', 'jti']) {
    cases.push({ name: `missing ${claim}`, token: await sign(signInClaims(), { omit: [claim] }), status: 400, code: 'missing_claim', reason: new RegExp(`missing the “${claim}” claim`) })
  }

  for (const c of cases) {
    const res = await postAssertion(app, c.token)
    t.equal(res.statusCode, c.status, `${c.name}: HTTP ${c.status}`)
    t.match(res.headers['content-type'], /text\/html/, `${c.name}: a page`)
    t.match(res.body, '<h1 id="refused-title">Single sign-on refused</h1>', `${c.name}: refusal page`)
    t.match(res.body, c.reason, `${c.name}: the reason in words`)
    t.match(res.body, `<code>${c.code}</code>`, `${c.name}: reason code ${c.code}`)
    t.match(res.body, `<a class="button primary" href="${PORTAL}">Return to the MSSP Portal</a>`, `${c.name}: a link back to the portal`)
    t.notOk(res.headers['set-cookie'], `${c.name}: no session`)
  }

  const json = await app.inject({ method: 'POST', url: '/mssp/sso', payload: { assertion: valid } })
  t.equal(json.statusCode, 400, 'a JSON body is not the form post')
  t.match(json.body, /form post/, 'the answer to POST /mssp/sso shows /form post/')
})

t.test('replay: an assertion works once', async (t) => {
  const app = build()
  t.teardown(() => app.close())
  const token = await sign(signInClaims())
  t.equal((await postAssertion(app, token)).statusCode, 303, 'first use')
  const again = await postAssertion(app, token)
  t.equal(again.statusCode, 401, 'second use refused')
  t.match(again.body, 'This assertion has already been used; each one works once. Go back to the MSSP Portal and open the instance again.', 'postAssertion(…) shows \'This assertion has already been used; each one wor…\'')
  t.match(again.body, '<code>replayed</code>', 'postAssertion(…) shows \'<code>replayed</code>\'')
  t.notOk(again.headers['set-cookie'], 'no again.headers[\'set-cookie\']')
  // A refused assertion does not use up its jti: only a verified one is remembered.
  const jti = crypto.randomUUID()
  t.equal((await postAssertion(app, await sign(signInClaims({ jti, aud: 'http://elsewhere.test' })))).statusCode, 401, 'postAssertion(…) answers 401')
  t.equal((await postAssertion(app, await sign(signInClaims({ jti })))).statusCode, 303, 'the jti of a refused assertion is still free')
  const iat = now() - 63
  t.equal((await postAssertion(app, await sign(signInClaims({ iat, exp: iat + 60 })))).statusCode, 303, 'expired 3 s ago: within the 5 s clock tolerance')
})

t.test('the jti store and the session store', async (t) => {
  let clock = 1_000_000
  const store = new MemoryJtiStore({ now: () => clock })
  t.equal(await store.consume('a', clock + 65_000), true, 'store.consume(\'a\', clock + 65_000) is true')
  t.equal(await store.consume('a', clock + 65_000), false, 'used')
  t.equal(await store.consume('b', clock + 10_000), true, 'store.consume(\'b\', clock + 10_000) is true')
  clock += 66_000
  t.equal(await store.consume('a', clock + 65_000), true, 'forgotten after exp, when it could not be accepted anyway')
  t.equal(store.size, 1, 'expired entries are swept')

  let sclock = 0
  const sessions = new SessionStore({ now: () => sclock })
  const base = { sub: DANA.sub, name: DANA.name, username: DANA.preferred_username, role: { level: 32 as const, label: 'VM Standard' }, account: ACCOUNT, interface: 'vm' as const, logo: null, returnUrl: RETURN_URL, actor: null }
  const { token } = sessions.open(base)
  t.ok(sessions.get(token), 'sessions.get(token)')
  sclock += IDLE_MS + 1
  t.notOk(sessions.get(token), 'an idle session ends')
  const second = sessions.open(base)
  sessions.open({ ...base, sub: SAM.sub })
  t.equal(sessions.endAllFor(DANA.sub), 1, 'sessions.endAllFor(DANA.sub) is 1')
  t.notOk(sessions.get(second.token), 'no sessions.get(second.token)')
})

t.test('Leave User ends the instance session and returns to the portal', async (t) => {
  const app = build()
  t.teardown(() => app.close())
  const b = await signIn(app)
  const csrf = await b.csrf()
  const noToken = await b.post('/mssp/leave')
  t.equal(noToken.statusCode, 403, 'Leave User needs the session’s token')
  const res = await b.post('/mssp/leave', { _csrf: csrf })
  t.equal(res.statusCode, 303, 'POST /mssp/leave answers 303')
  t.equal(res.headers.location, RETURN_URL, 'back to return_url')
  t.match(header(res, 'set-cookie'), /^demo_instance_session=; Path=\/; HttpOnly; SameSite=Lax; Max-Age=0$/, 'cookie cleared')
  const after = await b.get('/vm')
  t.equal(after.statusCode, 401, 'the old cookie no longer works')
  t.match(after.body, 'Not signed in', 'the answer to GET /vm shows \'Not signed in\'')
  t.match(after.body, `href="${PORTAL}"`, `the answer to GET /vm shows href="${PORTAL}"`)
  t.equal((await app.inject({ url: '/vm' })).statusCode, 401, 'no cookie, no page')
  t.equal((await app.inject({ url: '/settings' })).statusCode, 401, 'GET /settings answers 401')
})

t.test('role rules: actions hidden by role and refused (403) when posted anyway', async (t) => {
  const app = build()
  t.teardown(() => app.close())
  const admin = await signIn(app, { sub: ALEX.sub, name: ALEX.name, preferred_username: ALEX.preferred_username, role: ROLE(64) })
  const ids = scanIds((await admin.get('/vm')).body)
  const priyaScan = ids.get('Weekly external perimeter')!
  t.ok(priyaScan, 'a colleague’s scan')

  const browsers = new Map<number, Browser>()
  for (const level of [16, 24, 32, 40, 64] as const) {
    const b = level === 64 ? admin : await signIn(app, { role: ROLE(level) })
    browsers.set(level, b)
    const body = (await b.get('/vm')).body
    const rule = ROLE_RULES[level]
    const label = `${rule.label}`
    t.equal(/>Launch<\/button>/.test(body), rule.launchScans, `${label}: Launch ${rule.launchScans ? 'shown' : 'hidden'}`)
    for (const button of ['Create Scan', 'Create Dashboard', 'Create Saved Search']) {
      t.equal(body.includes(`>${button}</summary>`), rule.createOwn, `${label}: ${button} ${rule.createOwn ? 'shown' : 'hidden'}`)
    }
    t.equal(body.includes(`/vm/scans/${priyaScan}/edit`), rule.manageAllScans, `${label}: Edit on another user’s scan ${rule.manageAllScans ? 'shown' : 'hidden'}`)
    t.equal(/\/vm\/scans\/[0-9a-f-]{36}\/edit" aria-label="Edit Dana’s branch office scan"/.test(body), rule.createOwn, `${label}: Edit on their own scan`)
    t.equal(body.includes('href="/settings"'), rule.settings, `${label}: Settings ${rule.settings ? 'shown' : 'hidden'}`)
    t.match(body, rule.summary, `${label}: says what the role may do`)
  }

  const basic = browsers.get(16)!
  const launchBasic = await basic.post(`/vm/scans/${priyaScan}/launch`, { _csrf: await basic.csrf() })
  t.equal(launchBasic.statusCode, 403, 'Basic may not launch')
  t.match(launchBasic.body, 'Your role (Basic) may not launch scans.', `the answer to POST /vm/scans/${priyaScan}/launch shows 'Your role (Basic) may not launch scans.'`)

  const operator = browsers.get(24)!
  const launch = await operator.post(`/vm/scans/${priyaScan}/launch`, { _csrf: await operator.csrf() })
  t.equal(launch.statusCode, 303, 'VM Scan Operator launches')
  t.equal(launch.headers.location, '/vm', `POST /vm/scans/${priyaScan}/launch redirects to '/vm'`)
  const running = (await operator.get('/vm')).body
  t.match(running, 'Launched “Weekly external perimeter”.', 'flash')
  t.match(running, /Weekly external perimeter<\/td>[\s\S]*?status-running">Running/, 'the scan runs')
  const searchOperator = await operator.post('/vm/saved-searches', { _csrf: await operator.csrf(), name: 'Mine', query: 'severity:high' })
  t.equal(searchOperator.statusCode, 403, 'VM Scan Operator may not create saved searches')
  t.match(searchOperator.body, 'may not create saved searches', 'the answer to POST /vm/saved-searches shows \'may not create saved searches\'')
  t.equal((await operator.post('/vm/scans', { _csrf: await operator.csrf(), name: 'x', target: 'y' })).statusCode, 403, 'POST /vm/scans answers 403')
  t.equal((await operator.post('/vm/dashboards', { _csrf: await operator.csrf(), name: 'x' })).statusCode, 403, 'POST /vm/dashboards answers 403')

  const standard = browsers.get(32)!
  const created = await standard.post('/vm/saved-searches', { _csrf: await standard.csrf(), name: 'Internet-facing criticals', query: 'severity:critical AND tag:dmz' })
  t.equal(created.statusCode, 303, 'VM Standard creates a saved search')
  const withSearch = (await standard.get('/vm')).body
  t.match(withSearch, /<strong>Internet-facing criticals<\/strong> <code>severity:critical AND tag:dmz<\/code> <span class="muted">· Dana Whitfield<\/span>/, 'withSearch matches /<strong>Internet-facing criticals<\\/strong> <code…/')
  const invalid = await standard.post('/vm/saved-searches', { _csrf: await standard.csrf(), name: '', query: 'x' })
  t.equal(invalid.statusCode, 422, 'a saved search needs a name')
  t.match(invalid.body, 'Give the saved search a name', 'the answer to POST /vm/saved-searches shows \'Give the saved search a name\'')
  t.equal((await standard.post('/was/scans', { _csrf: await standard.csrf(), name: 'Shop', target: 'https://shop.example' })).statusCode, 303, 'creates a scan')
  t.match((await standard.get('/was')).body, /Shop<\/td>\s*<td>Dana Whitfield/, 'the answer to GET /was shows /Shop<\\/td>\\s*<td>Dana Whitfield/')
  t.equal((await standard.get(`/vm/scans/${priyaScan}/edit`)).statusCode, 403, 'VM Standard may not edit another user’s scan')
  t.equal((await standard.post(`/vm/scans/${priyaScan}`, { _csrf: await standard.csrf(), name: 'Renamed' })).statusCode, 403, `POST /vm/scans/${priyaScan} answers 403`)
  const own = scanIds((await standard.get('/vm')).body).get('Dana’s branch office scan')!
  t.equal((await standard.get(`/vm/scans/${own}/edit`)).statusCode, 200, 'but edits their own')
  t.equal((await standard.post(`/vm/scans/${own}`, { _csrf: await standard.csrf(), name: 'Branch office (weekly)' })).statusCode, 303, `POST /vm/scans/${own} answers 303`)

  const manager = browsers.get(40)!
  t.equal((await manager.post(`/vm/scans/${priyaScan}`, { _csrf: await manager.csrf(), name: 'Perimeter (weekly)' })).statusCode, 303, 'VM Scan Manager edits everyone’s scans')
  t.match((await manager.get('/vm')).body, 'Perimeter (weekly)', 'the answer to GET /vm shows \'Perimeter (weekly)\'')
  const settingsManager = await manager.get('/settings')
  t.equal(settingsManager.statusCode, 403, 'only Administrators see settings')
  t.match(settingsManager.body, 'Your role (VM Scan Manager) may not see the instance’s settings.', 'the answer to GET /settings shows \'Your role (VM Scan Manager) may not see the instan…\'')
  const settings = await admin.get('/settings')
  t.equal(settings.statusCode, 200, 'Administrator sees settings')
  t.match(settings.body, '<dt>Trusted portal (iss)</dt><dd>http://portal.test</dd>', 'the answer to GET /settings shows \'<dt>Trusted portal (iss)</dt><dd>http://portal.test</dd>\'')

  t.test('CSRF and same-origin checks on the instance’s own forms', async (t) => {
    const csrf = await operator.csrf()
    t.equal((await operator.post(`/vm/scans/${priyaScan}/launch`)).statusCode, 403, 'no token')
    t.equal((await operator.post(`/vm/scans/${priyaScan}/launch`, { _csrf: 'x'.repeat(csrf.length) })).statusCode, 403, 'wrong token')
    t.equal((await operator.post(`/vm/scans/${priyaScan}/launch`, { _csrf: await standard.csrf() })).statusCode, 403, 'another session’s token')
    t.equal((await operator.post(`/vm/scans/${priyaScan}/launch`, { _csrf: csrf }, { origin: 'http://evil.test' })).statusCode, 403, 'a cross-origin post')
    t.equal((await operator.post(`/vm/scans/${priyaScan}/launch`, { _csrf: csrf }, { origin: ORIGIN })).statusCode, 303, 'same origin with the token')
    const noSession = await app.inject({ method: 'POST', url: `/vm/scans/${priyaScan}/launch`, headers: FORM, payload: `_csrf=${csrf}` })
    t.equal(noSession.statusCode, 401, 'no session')
    t.equal((await operator.post('/vm/scans/00000000-0000-4000-8000-000000000000/launch', { _csrf: csrf })).statusCode, 404, 'unknown scan')
    t.equal((await operator.post(`/was/scans/${priyaScan}/launch`, { _csrf: csrf })).statusCode, 404, 'a VM scan is not a WAS scan')
  })
})

t.test('user transfer applies the deletion table', async (t) => {
  const app = build()
  t.teardown(() => app.close())
  const dana = await signIn(app)
  t.equal((await dana.post('/vm/saved-searches', { _csrf: await dana.csrf(), name: 'Temporary', query: 'port:3389' })).statusCode, 303, 'POST /vm/saved-searches answers 303')

  const res = await postTransfer(app, await sign(transferClaims()))
  t.equal(res.statusCode, 200, 'postTransfer(…) answers 200')
  t.same(res.json(), { migrated: 7, deleted: 8, retained: 7 }, 'scans, results and templates move; dashboards, saved searches and user target groups go; the rest stays')
  t.equal((await dana.get('/vm')).statusCode, 401, 'the deleted user’s sessions end')

  const sam = await signIn(app, { sub: SAM.sub, name: SAM.name, preferred_username: SAM.preferred_username })
  const vm = (await sam.get('/vm')).body
  t.match(vm, /Dana’s branch office scan<\/td>\s*<td>Sam Okafor <span class="you">you<\/span>/, 'scan schedule migrated to the successor')
  t.match(vm, /Dana’s branch office scan<\/td><td>Sam Okafor/, 'historical scan result migrated')
  t.match(vm, /Dana’s quick discovery<\/strong> <span class="muted">Based on Host Discovery · Sam Okafor/, 'scan template migrated')
  t.notMatch(vm, 'Dana’s remediation board', 'custom dashboard deleted')
  t.notMatch(vm, 'Dana’s unpatched browsers', 'saved search deleted')
  t.notMatch(vm, 'Temporary', 'the saved search made in the session deleted too')
  t.match(vm, 'Executive risk summary', 'other users’ dashboards stay')
  t.match((await sam.get('/was')).body, /Dana’s staging web app<\/td>\s*<td>Sam Okafor/, 'WAS scan migrated')
  t.match((await sam.get('/cs')).body, /Dana’s build images<\/td>\s*<td>Sam Okafor/, 'CS scan migrated')

  const admin = await signIn(app, { sub: ALEX.sub, name: ALEX.name, preferred_username: ALEX.preferred_username, role: ROLE(64) })
  const settings = (await admin.get('/settings')).body
  const row = (name: string) => new RegExp(`<td>${name.replace(/[()]/g, '\\$&')}</td><td>[^<]*</td><td><span class="muted">([^<]+):</span> (.*?)</td></tr>`).exec(settings)
  t.same(row('SSH key (Dana)')?.slice(1), ['Created By', '<span class="null">null</span>'], 'managed credential retained, Created By null')
  t.same(row('Owner: Branch IT')?.slice(1), ['Created By', '<span class="null">null</span>'], 'tag retained, Created By null')
  t.same(row('Recast: OpenSSH info leak to Low')?.slice(1), ['Owner', 'Unknown User'], 'recast rule retained, owner Unknown User')
  t.same(row('Branch VoIP phones')?.slice(1), ['Owner', 'Dana Whitfield (deleted)'], 'exclusion retained')
  t.same(row('Branch offices')?.slice(1), ['Owner', 'Dana Whitfield (deleted)'], 'system target group retained')
  t.same(row('Azure (branch)')?.slice(1), ['Owner', 'Dana Whitfield (deleted)'], 'connector retained')
  t.same(row('Nessus Agent group: branch laptops')?.slice(1), ['Owner', 'Dana Whitfield (deleted)'], 'sensor retained')
  t.notMatch(settings, 'Dana’s lab hosts', 'user target group deleted')
  t.match(settings, /<td>Dana Whitfield<\/td><td>dana@mssp\.example<\/td><td>VM Standard<\/td><td>[^<]+<\/td><td>Deleted<\/td>/, 'the user is marked deleted')

  const again = await postTransfer(app, await sign(transferClaims()))
  t.same(again.json(), { migrated: 0, deleted: 0, retained: 0 }, 'a retry with a fresh message: already done, nothing changes')
  const unknown = await postTransfer(app, await sign(transferClaims({ sub: crypto.randomUUID() })))
  t.same(unknown.json(), { migrated: 0, deleted: 0, retained: 0 }, 'a user who never signed in: nothing to do')
})

t.test('user transfer refusals are JSON', async (t) => {
  const app = build()
  t.teardown(() => app.close())
  const iat = now()
  const used = await sign(transferClaims())
  t.equal((await postTransfer(app, used)).statusCode, 200, 'postTransfer(…) answers 200')
  const cases: Array<{ name: string; message: unknown; status: number; error: string; reason?: RegExp }> = [
    { name: 'replayed', message: used, status: 401, error: 'replayed', reason: /already been used/ },
    { name: 'no message', message: undefined, status: 400, error: 'missing_assertion' },
    { name: 'message not a string', message: 42, status: 400, error: 'missing_assertion' },
    { name: 'expired', message: await sign(transferClaims({ iat: iat - 400, exp: iat - 100 })), status: 401, error: 'expired' },
    { name: 'lifetime over 300 s', message: await sign(transferClaims({ iat, exp: iat + 301 })), status: 401, error: 'lifetime_too_long', reason: /at most 300 seconds/ },
    { name: 'wrong audience', message: await sign(transferClaims({ aud: 'http://other.test' })), status: 401, error: 'wrong_audience' },
    { name: 'wrong issuer', message: await sign(transferClaims({ iss: 'http://evil.test' })), status: 401, error: 'wrong_issuer' },
    { name: 'signed by another key', message: await sign(transferClaims(), { key: other.privateKey }), status: 401, error: 'bad_signature' },
    { name: 'alg none', message: unsigned(transferClaims()), status: 401, error: 'unsigned' },
    { name: 'HS256 with the public key', message: await sign(transferClaims(), { alg: 'HS256', key: new TextEncoder().encode(await exportSPKI(publicKey)) }), status: 401, error: 'algorithm_not_allowed' },
    { name: 'a sign-in assertion as a transfer', message: await sign(signInClaims()), status: 400, error: 'missing_claim', reason: /missing the “typ” claim/ },
    { name: 'wrong typ', message: await sign(transferClaims({ typ: 'sso' })), status: 400, error: 'wrong_type' },
    { name: 'missing successor', message: await sign(transferClaims(), { omit: ['successor'] }), status: 400, error: 'missing_claim', reason: /“successor”/ },
    { name: 'successor without a name', message: await sign(transferClaims({ successor: { sub: SAM.sub } })), status: 400, error: 'invalid_claim', reason: /successor\.name/ },
    { name: 'successor is the deleted user', message: await sign(transferClaims({ successor: { ...SAM, sub: DANA.sub } })), status: 400, error: 'invalid_claim' },
  ]
  for (const c of cases) {
    const res = await postTransfer(app, c.message)
    t.equal(res.statusCode, c.status, `${c.name}: HTTP ${c.status}`)
    t.match(res.headers['content-type'], /application\/json/, `${c.name}: JSON`)
    t.equal(res.json().error, c.error, `${c.name}: ${c.error}`)
    t.type(res.json().message, 'string', 'res.json().message is a \'string\'')
    if (c.reason) t.match(res.json().message, c.reason, `${c.name}: reason`)
  }
  const notJson = await app.inject({ method: 'POST', url: '/mssp/user-transfer', headers: { 'content-type': 'application/json' }, payload: '{nope' })
  t.equal(notJson.statusCode, 400, 'malformed JSON')
  t.match(notJson.headers['content-type'], /application\/json/, 'notJson.headers[\'content-type\'] matches /application\\/json/')
})

t.test('security headers on the instance’s pages', async (t) => {
  const app = build({ origin: 'https://instance.test' })
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/mssp/sso', headers: FORM, payload: new URLSearchParams({ assertion: await sign(signInClaims({ aud: 'https://instance.test' })) }).toString() })
  t.equal(res.statusCode, 303, 'POST /mssp/sso answers 303')
  t.match(header(res, 'set-cookie'), /; Secure$/, 'Secure cookie over https')
  const cookie = header(res, 'set-cookie').split(';')[0]
  const pages: Array<[string, LightMyRequestResponse]> = [
    ['interface', await app.inject({ url: '/vm', headers: { cookie } })],
    ['refusal', await postAssertion(app, 'x')],
    ['signed out', await app.inject({ url: '/cs' })],
    ['not found', await app.inject({ url: '/nope', headers: { cookie } })],
  ]
  for (const [name, page] of pages) {
    const csp = header(page, 'content-security-policy')
    t.match(csp, "default-src 'none'", `${name}: default-src 'none'`)
    t.notMatch(csp, 'script-src', `${name}: no script source at all`)
    t.notMatch(csp, /unsafe-inline|unsafe-eval/, `${name}: nothing unsafe`)
    t.match(csp, "frame-ancestors 'none'", `${name}: never framed`)
    t.match(csp, "form-action 'self' http://portal.test", `${name}: forms to the instance, Leave User’s redirect to the portal`)
    t.equal(header(page, 'x-frame-options'), 'DENY', 'header(page, \'x-frame-options\') is \'DENY\'')
    t.equal(header(page, 'x-content-type-options'), 'nosniff', 'header(page, \'x-content-type-options\') is \'nosniff\'')
    t.equal(header(page, 'referrer-policy'), 'no-referrer', 'header(page, \'referrer-policy\') is \'no-referrer\'')
    t.equal(header(page, 'cache-control'), 'no-store', 'header(page, \'cache-control\') is \'no-store\'')
    t.match(header(page, 'strict-transport-security'), /max-age=\d+/, 'header(page, \'strict-transport-security\') matches /max-age=\\d+/')
    t.notMatch(page.body, /<script|\son[a-z]+=|style="/i, `${name}: no script, handler or inline style`)
  }
  t.equal(pages[3][1].statusCode, 404, 'pages[3][1] answers 404')
})

t.test('mounted under /demo-instance as a plugin of another server', async (t) => {
  const host = Fastify()
  t.teardown(() => host.close())
  // Like the portal: its own form parser, and a hook that refuses routes without config.access.
  await host.register(formbody)
  host.addHook('onRoute', (route) => {
    const config = (route.config ?? {}) as { access?: string; csrf?: boolean }
    if (!config.access) throw new Error(`${route.url} declares no access`)
    if (config.access === 'public' && route.method === 'POST' && config.csrf !== false && route.url.startsWith('/demo-instance')) throw new Error(`${route.url} would need the host's CSRF token`)
  })
  host.get('/', { config: { access: 'public' } }, async () => 'host')
  await host.register(demoInstancePlugin({ portalUrl: PORTAL, jwks: JWKS, origin: ORIGIN, basePath: '/demo-instance' }), { prefix: '/demo-instance' })
  await host.ready()

  const base = '/demo-instance'
  const b = await signIn(host, {}, base)
  t.equal(b.res.headers.location, '/demo-instance/vm', 'b.res redirects to \'/demo-instance/vm\'')
  t.match(header(b.res, 'set-cookie'), /; Path=\/demo-instance; HttpOnly; SameSite=Lax$/, 'cookie scoped to the instance’s path')
  const body = (await b.get('/demo-instance/vm')).body
  const urls = [...body.matchAll(/(?:href|src|action)="([^"]+)"/g)].map((m) => m[1])
  const own = urls.filter((u) => u.startsWith('/'))
  t.ok(own.length > 10, 'own.length > 10')
  t.same(own.filter((u) => !u.startsWith('/demo-instance/') && u !== '#main'), [], 'every link, image and form action carries the base path')
  t.ok(urls.includes('/demo-instance/mssp/leave'), 'urls.includes(\'/demo-instance/mssp/leave\')')
  t.ok(urls.includes('/demo-instance/static/demo-instance.css'), 'includes(…)')
  t.equal((await host.inject({ url: '/demo-instance/static/demo-instance.css' })).statusCode, 200, 'GET /demo-instance/static/demo-instance.css answers 200')
  const csrf = /name="_csrf" value="([^"]+)"/.exec(body)![1]
  const ids = scanIds(body)
  const launch = await b.post(`/demo-instance/vm/scans/${ids.get('Weekly external perimeter')}/launch`, { _csrf: csrf })
  t.equal(launch.statusCode, 303, `POST /demo-instance/vm/scans/${ids.get('Weekly external perimeter')}/launch answers 303`)
  t.equal(launch.headers.location, '/demo-instance/vm', `POST /demo-instance/vm/scans/${ids.get('Weekly external perimeter')}/launch redirects to '/demo-instance/vm'`)
  t.equal((await b.get('/demo-instance')).headers.location, '/demo-instance/vm', 'GET /demo-instance redirects to \'/demo-instance/vm\'')
  const leave = await b.post('/demo-instance/mssp/leave', { _csrf: csrf })
  t.equal(leave.headers.location, RETURN_URL, `POST /demo-instance/mssp/leave redirects to ${RETURN_URL}`)
  t.match(header(leave, 'set-cookie'), /Path=\/demo-instance;/, 'header(leave, \'set-cookie\') matches /Path=\\/demo-instance;/')
  t.equal((await postTransfer(host, await sign(transferClaims({ sub: crypto.randomUUID() })), base)).statusCode, 200, 'user transfer under the base path')
  const refusal = await postAssertion(host, 'x', base)
  t.equal(refusal.statusCode, 400, 'the instance’s own refusal page, not the host’s')
  t.match(refusal.body, 'Single sign-on refused', 'postAssertion(…) shows \'Single sign-on refused\'')
  t.equal((await host.inject({ url: '/' })).body, 'host', 'the host’s own routes are untouched')
  t.equal((await host.inject({ url: '/demo-instance/nope' })).statusCode, 404, 'GET /demo-instance/nope answers 404')
  t.match((await host.inject({ url: '/demo-instance/nope' })).body, 'This instance has no such page.', 'the answer to GET /demo-instance/nope shows \'This instance has no such page.\'')
  t.notOk((await host.inject({ url: '/' })).headers['content-security-policy'], 'the instance’s headers stay inside it')

  t.test('standalone with a base path', async (t) => {
    const app = build({ basePath: '/demo-instance' })
    t.teardown(() => app.close())
    const b = await signIn(app, { interface: 'cs' }, base)
    t.equal(b.res.headers.location, '/demo-instance/cs', 'b.res redirects to \'/demo-instance/cs\'')
    t.equal((await b.get('/demo-instance/cs')).statusCode, 200, 'GET /demo-instance/cs answers 200')
    t.equal((await app.inject({ method: 'POST', url: '/mssp/sso', headers: FORM, payload: 'assertion=x' })).statusCode, 404, 'nothing outside the base path')
  })

  t.test('a wrong prefix or bad options fail at start', async (t) => {
    const wrong = Fastify()
    t.teardown(() => wrong.close().catch(() => {}))
    wrong.register(demoInstancePlugin({ portalUrl: PORTAL, jwks: JWKS, origin: ORIGIN, basePath: '/demo-instance' }), { prefix: '/elsewhere' })
    await t.rejects(async () => { await wrong.ready() }, /registered with prefix '\/elsewhere' but basePath is '\/demo-instance'/, 'rejects')
    t.throws(() => build({ basePath: '/demo-instance/' }), /basePath must be/, 'throws /basePath must be/')
    t.throws(() => build({ origin: 'http://instance.test/path' }), /origin must be/, 'throws /origin must be/')
  })
})

t.test('keys from the portal’s JWKS URL, with rotation', async (t) => {
  const portal = Fastify()
  let fetches = 0
  portal.get('/.well-known/jwks.json', async () => {
    fetches += 1
    return { keys: [rotatedJwk, publicJwk] }
  })
  await portal.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => portal.close())
  const portalUrl = `http://127.0.0.1:${(portal.server.address() as { port: number }).port}`
  const app = buildDemoInstance({ portalUrl, origin: ORIGIN, basePath: '' })
  t.teardown(() => app.close())
  const claims = () => signInClaims({ iss: portalUrl, return_url: `${portalUrl}/accounts` })
  t.equal((await postAssertion(app, await sign(claims()))).statusCode, 303, 'the current key, fetched from `${portalUrl}/.well-known/jwks.json`')
  t.equal((await postAssertion(app, await sign(claims(), { key: other.privateKey, kid: rotatedJwk.kid }))).statusCode, 303, 'the previous key during rotation')
  t.equal(fetches, 1, 'the key set is cached')
  t.equal((await postAssertion(app, await sign(claims(), { kid: 'retired' }))).statusCode, 401, 'a kid the portal no longer publishes')

  const closed = Fastify()
  await closed.listen({ port: 0, host: '127.0.0.1' })
  const deadUrl = `http://127.0.0.1:${(closed.server.address() as { port: number }).port}`
  await closed.close()
  const lonely = buildDemoInstance({ portalUrl: deadUrl, origin: ORIGIN, basePath: '' })
  t.teardown(() => lonely.close())
  const unreachable = await postAssertion(lonely, await sign(signInClaims({ iss: deadUrl, return_url: `${deadUrl}/accounts` })))
  t.equal(unreachable.statusCode, 503, 'the portal’s keys cannot be fetched')
  t.match(unreachable.body, 'could not get the portal’s public keys', 'postAssertion(…) shows \'could not get the portal’s public keys\'')
})
