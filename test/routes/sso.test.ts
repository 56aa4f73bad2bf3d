import t from 'tap'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { PNG } from 'pngjs'
import { type Tap, Client, assign, buildTestApp, createAccount, createUser, dialects } from '../helper.ts'
import { rotateSigningKey } from '../../src/areas/instances/signing-keys.ts'

function assertionFrom(body: string): { action: string; assertion: string } {
  return { action: /<form id="sso-form" method="post" action="([^"]+)"/.exec(body)![1]!, assertion: /name="assertion" value="([^"]+)"/.exec(body)![1]! }
}

for (const dialect of dialects) {
  t.test(`${dialect}: single sign-on, portal side`, async (t) => {
    async function setup(t: Tap, env: Record<string, string> = {}) {
      const { app } = await buildTestApp(t, dialect, env)
      const admin = await createUser(app, { role: 64, name: 'Ada Admin' })
      const basic = await createUser(app, { role: 16, name: 'Bo Basic' })
      const png = new PNG({ width: 10, height: 10 })
      const now = Date.now()
      const logo = await app.db.insertInto('logos').values({ uuid: crypto.randomUUID(), name: 'L', filename: 'l.png', png: PNG.sync.write(png), width: 10, height: 10, created_by: null, created_at: now, updated_at: now }).returningAll().executeTakeFirstOrThrow()
      const vm = await createAccount(app, { container_name: 'VM Co', licensed_apps: 'cs,vm,was', instance_url: 'https://vm.customer.example/', logo_id: logo.id })
      const was = await createAccount(app, { container_name: 'WAS Co', licensed_apps: 'was', instance_url: 'https://was.customer.example' })
      const none = await createAccount(app, { container_name: 'No URL Co', licensed_apps: 'vm' })
      await assign(app, basic.id, [was.id])
      return { app, admin, basic, vm, was, none }
    }
    async function jwks(app: Parameters<typeof assertionFrom>[0] extends never ? never : any) {
      return createLocalJWKSet((await app.inject({ url: '/.well-known/jwks.json' })).json())
    }

    t.test('the button posts a signed, short-lived assertion to the instance, with the claims of the contract', async (t) => {
      const { app, admin, vm } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      const page = await c.get('/accounts')
      t.match(page.body, 'aria-label="Sign in to the instance of VM Co"', 'the answer to GET /accounts shows \'aria-label="Sign in to the instance of VM Co"\'')
      t.match(page.body, 'Single sign-on to No URL Co unavailable: This account has no instance URL yet.', 'the answer to GET /accounts shows \'Single sign-on to No URL Co unavailable: This acco…\'')
      const res = await c.post(`/accounts/${vm.uuid}/sso`)
      t.equal(res.statusCode, 200, `POST /accounts/${vm.uuid}/sso answers 200`)
      t.match(res.headers['content-security-policy'], "form-action https://vm.customer.example;", 'res.headers[\'content-security-policy\'] matches \'form-action https://vm.customer.example;\'')
      t.equal(res.headers['cache-control'], 'no-store', 'res.headers[\'cache-control\'] is \'no-store\'')
      t.match(res.body, '<button type="submit" class="primary">Continue</button>', `the answer to POST /accounts/${vm.uuid}/sso shows '<button type="submit" class="primary">Continue</button>'`)
      const { action, assertion } = assertionFrom(res.body)
      t.equal(action, 'https://vm.customer.example/mssp/sso', 'action is \'https://vm.customer.example/mssp/sso\'')
      const { payload, protectedHeader } = await jwtVerify(assertion, await jwks(app), { issuer: 'http://portal.test', audience: 'https://vm.customer.example', algorithms: ['EdDSA'] })
      t.equal(protectedHeader.alg, 'EdDSA', 'protectedHeader.alg is \'EdDSA\'')
      t.match(payload, { sub: admin.uuid, name: 'Ada Admin', preferred_username: admin.username, role: { level: 64, label: 'Administrator' }, account: { uuid: vm.uuid, name: 'VM Co' }, interface: 'vm', return_url: 'http://portal.test/accounts' }, 'payload matches the expected fields')
      t.match(String(payload.logo), /^data:image\/png;base64,/, 'String(payload.logo) matches /^data:image\\/png;base64,/')
      t.ok(payload.exp! - payload.iat! <= 60, 'expires within 60 s')
      t.ok(payload.jti, 'payload.jti')
      t.notOk(payload.act, 'no act claim when not assisting')
      const event = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'instance.sso').executeTakeFirstOrThrow()
      t.equal(event.target_id, vm.uuid, `event.target_id is ${vm.uuid}`)
      t.match(event.fields, payload.jti!, `event.fields matches ${payload.jti}`)
    })

    t.test('every role signs in to its visible accounts only; WAS-only opens WAS; no logo means null', async (t) => {
      const { app, basic, vm, was } = await setup(t)
      const c = new Client(app)
      await c.signIn(basic.username)
      await c.get('/accounts')
      t.equal((await c.post(`/accounts/${vm.uuid}/sso`)).statusCode, 404, 'an unassigned account is not found')
      const res = await c.post(`/accounts/${was.uuid}/sso`)
      const { payload } = await jwtVerify(assertionFrom(res.body).assertion, await jwks(app), { issuer: 'http://portal.test', audience: 'https://was.customer.example' })
      t.match(payload, { interface: 'was', role: { level: 16, label: 'Basic' }, logo: null }, 'payload matches the expected fields')
    })

    t.test('no instance URL: a clear refusal; with DEMO_INSTANCE=1 the demo instance stands in', async (t) => {
      const { app, admin, none } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      await c.get('/accounts')
      const res = await c.post(`/accounts/${none.uuid}/sso`)
      t.equal(res.statusCode, 409, `POST /accounts/${none.uuid}/sso answers 409`)
      t.match(res.body, 'This account has no instance URL yet.', `the answer to POST /accounts/${none.uuid}/sso shows 'This account has no instance URL yet.'`)
      const demo = await setup(t, { DEMO_INSTANCE: 'true' })
      const d = new Client(demo.app)
      await d.signIn(demo.admin.username)
      await d.get('/accounts')
      const ok = await d.post(`/accounts/${demo.none.uuid}/sso`)
      t.equal(assertionFrom(ok.body).action, 'http://portal.test/demo-instance/mssp/sso', 'assertionFrom(ok.body).action is \'http://portal.test/demo-instance/mssp/sso\'')
    })

    t.test('CSRF is required, GET does nothing, API keys are refused', async (t) => {
      const { app, admin, vm } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      await c.get('/accounts')
      const noToken = await app.inject({ method: 'POST', url: `/accounts/${vm.uuid}/sso`, headers: c.headers() })
      t.equal(noToken.statusCode, 403, `POST /accounts/${vm.uuid}/sso answers 403`)
      t.equal((await c.get(`/accounts/${vm.uuid}/sso`)).statusCode, 404, `GET /accounts/${vm.uuid}/sso answers 404`)
      const viaKeys = await app.inject({ method: 'POST', url: `/accounts/${vm.uuid}/sso`, headers: await c.apiKeys() })
      t.equal(viaKeys.statusCode, 401, 'API keys never reach an instance')
      t.equal((await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'instance.sso').execute()).length, 0, 'the audit_events rows\' count is 0')
    })

    t.test('while assisting, sub is the assisted user and act names the Administrator', async (t) => {
      const { app, admin, basic, was } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      await c.get('/users')
      t.equal((await c.post(`/users/${basic.uuid}/assist`)).statusCode, 303, `POST /users/${basic.uuid}/assist answers 303`)
      await c.get('/accounts')
      const res = await c.post(`/accounts/${was.uuid}/sso`)
      const { payload } = await jwtVerify(assertionFrom(res.body).assertion, await jwks(app), { issuer: 'http://portal.test', audience: 'https://was.customer.example' })
      t.equal(payload.sub, basic.uuid, `payload.sub is ${basic.uuid}`)
      t.same(payload.act, { sub: admin.uuid, name: 'Ada Admin', preferred_username: admin.username }, 'payload.act is the expected fields')
      const event = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'instance.sso').executeTakeFirstOrThrow()
      t.equal(event.actor_name, basic.username, `event.actor_name is ${basic.username}`)
      t.equal(event.assisting_name, admin.username, `event.assisting_name is ${admin.username}`)
    })

    t.test('key rotation: new assertions use the new key, the old key stays published', async (t) => {
      const { app, admin, vm } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      await c.get('/accounts')
      const first = assertionFrom((await c.post(`/accounts/${vm.uuid}/sso`)).body).assertion
      const oldKid = decodeProtectedHeader(first).kid
      const newKid = await rotateSigningKey(app)
      const published = (await app.inject({ url: '/.well-known/jwks.json' })).json().keys.map((k: { kid: string }) => k.kid)
      t.same(published.sort(), [oldKid, newKid].sort(), 'published.sort() is [oldKid, newKid].sort()')
      const second = assertionFrom((await c.post(`/accounts/${vm.uuid}/sso`)).body).assertion
      t.equal(decodeProtectedHeader(second).kid, newKid, `decodeProtectedHeader(second).kid is ${newKid}`)
      const set = await jwks(app)
      await t.resolves(jwtVerify(first, set, { issuer: 'http://portal.test', audience: 'https://vm.customer.example' }), 'the old assertion still verifies')
      const rows = await app.db.selectFrom('sso_signing_keys').selectAll().execute()
      t.ok(rows.every((r) => !r.private_key.includes('PRIVATE KEY')), 'private keys are encrypted at rest')
    })
  })
}
