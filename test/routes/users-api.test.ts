import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { User } from '../../src/db/schema.ts'
import { type Tap, apiKeysFor, Client, PASSWORD, assign, buildTestApp, createAccount, createUser, dialects } from '../helper.ts'
import { PORTAL_CONTAINER_UUID } from '../../src/lib/container.ts'
import { uuid } from '../../src/lib/tokens.ts'


/** API keys for a user, stored directly (as PUT /session/keys would). */
const keysFor = async (app: FastifyInstance, user: User): Promise<string> => (await apiKeysFor(app, user)).header

/** An API call with keys: JSON by default, or a plain form post (`form: true`). */
function call(app: FastifyInstance, keys: string, method: string, url: string, body?: Record<string, unknown>, opts: { form?: boolean; headers?: Record<string, string> } = {}): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { 'x-apikeys': keys, ...opts.headers }
  if (body === undefined) return app.inject({ method: method as 'GET', url, headers })
  if (opts.form) {
    const form = new URLSearchParams(Object.entries(body).map(([k, v]) => [k, String(v)])).toString()
    return app.inject({ method: method as 'POST', url, headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, payload: form })
  }
  return app.inject({ method: method as 'POST', url, headers, payload: body as Record<string, string> })
}

async function userRow(app: FastifyInstance, id: number) {
  return app.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

async function countUsers(app: FastifyInstance): Promise<number> {
  return Number((await app.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)
}

for (const dialect of dialects) {
  t.test(`${dialect}: the users API`, async (t) => {
    async function setup(t: Tap) {
      const { app } = await buildTestApp(t, dialect)
      const admin = await createUser(app, { role: 64, name: 'Ada Admin', username: 'ada@example.com' })
      const basic = await createUser(app, { role: 16, name: 'Bob Basic', username: 'bob@example.com' })
      const keys = await keysFor(app, admin)
      return { app, admin, basic, keys }
    }

    t.test('Administrators only: 403 for every other role on every route, 401 without keys', async (t) => {
      const { app, admin, basic } = await setup(t)
      const routes: Array<[string, string, Record<string, unknown>?]> = [
        ['GET', '/api/users'],
        ['GET', `/api/users/${basic.id}`],
        ['POST', '/api/users', { username: 'new@example.com', password: 'Zebra-42-Cloud', permissions: 16, name: 'New' }],
        ['PUT', `/api/users/${basic.id}`, { name: 'Renamed' }],
        ['PUT', `/api/users/${basic.id}/chpasswd`, { password: 'Zebra-42-Cloud' }],
        ['PUT', `/api/users/${basic.id}/enabled`, { enabled: false }],
        ['PUT', `/api/users/${basic.id}/keys`],
        ['DELETE', `/api/users/${basic.id}?successor_user_uuid=${admin.uuid}`],
        ['GET', `/api/users/${basic.id}/authorizations`],
        ['PUT', `/api/users/${basic.id}/authorizations`, { api_permitted: false }],
        ['GET', '/users'],
      ]
      for (const role of [16, 24, 32, 40]) {
        const caller = await createUser(app, { role })
        const keys = await keysFor(app, caller)
        for (const [method, url, body] of routes) {
          const res = await call(app, keys, method, url, body)
          t.equal(res.statusCode, 403, `role ${role}: ${method} ${url}`)
          t.match(res.json(), { statusCode: 403, error: 'Forbidden' }, 'the refusal is a JSON 403 Forbidden')
        }
      }
      for (const [method, url, body] of routes.filter(([, u]) => u.startsWith('/api/'))) {
        const res = await app.inject({ method: method as 'GET', url, ...(body ? { payload: body as Record<string, string> } : {}) })
        t.equal(res.statusCode, 401, `no keys: ${method} ${url}`)
      }
      const after = await userRow(app, basic.id)
      t.equal(after!.name, 'Bob Basic', 'nothing changed')
      t.equal(after!.enabled, 1, 'the refused calls did not disable the user')
      t.equal(await countUsers(app), 6, 'the refused calls created no user')
    })

    t.test('GET /users lists every user object; undeletable marks the last enabled Administrator', async (t) => {
      const { app, admin, basic, keys } = await setup(t)
      const now = Date.now()
      await app.db.insertInto('two_factor').values({ user_id: basic.id, sms_phone: '+15555550100', pending_phone: null, email_enabled: 1, totp_secret: null, pending_totp_secret: null, totp_last_step: null, updated_at: now }).execute()
      for (const url of ['/api/users', '/users']) {
        const res = await call(app, keys, 'GET', url)
        t.equal(res.statusCode, 200, url)
        const users = res.json().users as Array<Record<string, any>>
        t.same(users.map((u) => u.username), ['ada@example.com', 'bob@example.com'], 'every user is listed, in username order')
        const [a, b] = users
        t.match(a, { uuid: admin.uuid, id: admin.id, user_name: 'ada@example.com', name: 'Ada Admin', type: 'local', permissions: 64, enabled: true, undeletable: true, lockout: 0, api_permitted: true, ui_permitted: true, two_factor: { sms_phone: null, sms_enabled: false, email_enabled: false } }, 'the Administrator\'s user object, undeletable as the last Administrator')
        t.ok(a!.last_apikey_access > 0, 'the last API key use is shown')
        t.match(b, { uuid: basic.uuid, permissions: 16, undeletable: false, last_apikey_access: null, two_factor: { sms_phone: '+15555550100', sms_enabled: true, email_enabled: true } }, 'the Basic user\'s object with its two-factor settings')
        t.same(Object.keys(a!).sort(), ['api_permitted', 'email', 'enabled', 'id', 'last_apikey_access', 'last_login_attempt', 'lastlogin', 'lockout', 'login_fail_count', 'login_fail_total', 'name', 'permissions', 'two_factor', 'type', 'ui_permitted', 'undeletable', 'user_name', 'username', 'uuid'], 'a user object has exactly these fields')
      }
      await createUser(app, { role: 64, username: 'cleo@example.com' })
      const two = (await call(app, keys, 'GET', '/api/users')).json().users as Array<{ undeletable: boolean }>
      t.same(two.map((u) => u.undeletable), [false, false, false], 'two enabled Administrators: neither is the last')
    })

    t.test('GET /users/{id} takes the integer id or the uuid; 404 otherwise', async (t) => {
      const { app, basic, keys } = await setup(t)
      for (const id of [String(basic.id), basic.uuid]) {
        const res = await call(app, keys, 'GET', `/api/users/${id}`)
        t.equal(res.statusCode, 200, id)
        t.match(res.json(), { uuid: basic.uuid, id: basic.id, username: 'bob@example.com', undeletable: false }, `the user object by ${id}`)
      }
      for (const id of ['99999', uuid(), 'nobody', '1.5']) {
        const res = await call(app, keys, 'GET', `/api/users/${id}`)
        t.equal(res.statusCode, 404, id)
        t.match(res.json(), { statusCode: 404, error: 'Not Found' }, 'an unknown id is a JSON 404')
      }
    })

    t.test('POST /users creates a user from JSON or a form, with the admin-set password rule', async (t) => {
      const { app, keys } = await setup(t)
      const res = await call(app, keys, 'POST', '/api/users', { username: 'Carol@Example.com', password: 'Zebra42!', permissions: 32, name: 'Carol Standard', email: 'carol@mail.example.com' })
      t.equal(res.statusCode, 200, '8 characters with three classes are enough when an Administrator sets it')
      t.match(res.json(), { username: 'carol@example.com', name: 'Carol Standard', email: 'carol@mail.example.com', permissions: 32, enabled: true, type: 'local' }, 'the created user: username lower-cased, the fields given')
      t.equal((await new Client(app).signIn('carol@example.com', 'Zebra42!')).headers.location, '/accounts', 'the new user signs in')
      const form = await call(app, keys, 'POST', '/users', { username: 'dave@example.com', password: 'Zebra-42-Cloud', permissions: '24' }, { form: true })
      t.equal(form.statusCode, 200, 'a form post creates a user too')
      t.match(form.json(), { username: 'dave@example.com', name: 'dave@example.com', email: null, permissions: 24 }, 'a form-created user\'s name defaults to the username')
      const event = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.create').where('target_name', '=', 'carol@example.com').executeTakeFirst()
      t.equal(event?.actor_name, 'ada@example.com', 'audited')
    })

    t.test('POST /users refuses invalid input with what was wrong, creating nothing', async (t) => {
      const { app, keys } = await setup(t)
      const before = await countUsers(app)
      const cases: Array<[Record<string, unknown>, number, string]> = [
        [{ username: 'eve@unapproved.example', password: 'Zebra-42-Cloud', permissions: 16, name: 'Eve' }, 400, 'username: The domain unapproved.example is not approved'],
        [{ username: 'not-an-address', password: 'Zebra-42-Cloud', permissions: 16, name: 'Eve' }, 400, 'username: A valid username must be in the format name@domain'],
        [{ username: 'eve@example.com', password: 'short1A', permissions: 16, name: 'Eve' }, 400, 'password: Passwords must be at least 8 characters'],
        [{ username: 'eve@example.com', password: 'alllowercase', permissions: 16, name: 'Eve' }, 400, 'three of the following'],
        [{ username: 'eve@example.com', password: 'Zebra-42-Cloud', permissions: 16, name: 'Eve', email: 'not mail' }, 400, 'email: Enter a valid e-mail address'],
        [{ username: 'eve@example.com', password: 'Zebra-42-Cloud', permissions: 12, name: 'Eve' }, 400, 'permissions'],
        [{ username: 'eve@example.com', permissions: 16 }, 400, 'password'],
        [{ username: 'bob@example.com', password: 'Zebra-42-Cloud', permissions: 16, name: 'Bob Again' }, 409, 'already exists'],
        [{ username: 'BOB@example.com', password: 'Zebra-42-Cloud', permissions: 16, name: 'Bob Again' }, 409, 'already exists'],
      ]
      for (const [body, status, message] of cases) {
        const res = await call(app, keys, 'POST', '/api/users', body)
        t.equal(res.statusCode, status, JSON.stringify(body))
        t.match(res.json().message, message, 'the refusal says what was wrong')
        if (status === 400) t.ok(res.json().errors.length >= 1, 'errors list each problem')
      }
      t.equal(await countUsers(app), before, 'nothing created')
    })

    t.test('PUT /users/{id} changes role, name, e-mail and enabled; assignments are kept', async (t) => {
      const { app, basic, keys } = await setup(t)
      const acme = await createAccount(app, { container_name: 'Acme' })
      await assign(app, basic.id, [acme.id])
      const res = await call(app, keys, 'PUT', `/api/users/${basic.uuid}`, { name: 'Robert Basic', email: 'robert@mail.example.com', permissions: 40 })
      t.equal(res.statusCode, 200, 'an Administrator changes a user')
      t.match(res.json(), { name: 'Robert Basic', email: 'robert@mail.example.com', permissions: 40, enabled: true }, 'the changed fields are returned')
      const kept = await app.db.selectFrom('user_accounts').select('account_id').where('user_id', '=', basic.id).execute()
      t.same(kept.map((r) => r.account_id), [acme.id], 'assignments kept')

      const form = await call(app, keys, 'PUT', `/users/${basic.id}`, { enabled: 'false', email: '' }, { form: true })
      t.equal(form.statusCode, 200, 'a form PUT changes the user too')
      t.match(form.json(), { enabled: false, email: null, name: 'Robert Basic', permissions: 40 }, 'enabled=false and an empty e-mail are read from the form')

      const promoted = await call(app, keys, 'PUT', `/api/users/${basic.id}`, { permissions: 64, enabled: true })
      t.match(promoted.json(), { permissions: 64, enabled: true }, 'the user is promoted and enabled again')
      t.equal((await app.db.selectFrom('user_accounts').select('account_id').where('user_id', '=', basic.id).execute()).length, 0, 'an Administrator has no assignments')
      const actions = (await app.db.selectFrom('audit_events').select('action').where('target_id', '=', basic.uuid).orderBy('created_at').execute()).map((e) => e.action)
      // Events of one request can share a millisecond (and ids are random): compare as a set of counts.
      t.same([...actions].sort(), ['user.disable', 'user.enable', 'user.update', 'user.update', 'user.update'], 'each change is audited: three updates, a disable and an enable')

      for (const [body, status, message] of [
        [{}, 400, 'Nothing to change'],
        [{ name: '' }, 400, 'name: Enter the full name'],
        [{ email: 'nope' }, 400, 'email'],
        [{ permissions: 65 }, 400, 'permissions'],
        [{ enabled: 'maybe' }, 400, 'enabled'],
      ] as const) {
        const bad = await call(app, keys, 'PUT', `/api/users/${basic.id}`, body)
        t.equal(bad.statusCode, status, JSON.stringify(body))
        t.match(bad.json().message, message, 'the refusal says what was wrong')
      }
      t.equal((await call(app, keys, 'PUT', '/api/users/424242', { name: 'X' })).statusCode, 404, 'an unknown user id answers 404')
    })

    t.test('PUT /users/{id}/chpasswd sets another user\'s password and ends their sessions', async (t) => {
      const { app, admin, basic, keys } = await setup(t)
      const bob = new Client(app)
      await bob.signIn(basic.username)
      t.equal((await bob.get('/accounts')).statusCode, 200, 'Bob is signed in before the change')
      const weak = await call(app, keys, 'PUT', `/api/users/${basic.id}/chpasswd`, { password: 'weakpass' })
      t.equal(weak.statusCode, 400, 'a weak password is refused')
      t.match(weak.json().message, 'password: Passwords must be at least 8 characters', 'the refusal states the password rule')
      const res = await call(app, keys, 'PUT', `/users/${basic.uuid}/chpasswd`, { password: 'Lime-Tree-9' }, { form: true })
      t.equal(res.statusCode, 200, 'a good password is set by a form')
      t.same(res.json(), {}, 'the answer is an empty object')
      t.equal((await bob.get('/accounts')).statusCode, 303, 'their session ended')
      t.equal((await new Client(app).signIn(basic.username, PASSWORD)).statusCode, 401, 'the old password fails')
      t.equal((await new Client(app).signIn(basic.username, 'Lime-Tree-9')).headers.location, '/accounts', 'Bob signs in with the new password')
      const own = await call(app, keys, 'PUT', `/api/users/${admin.id}/chpasswd`, { password: 'Lime-Tree-9-Grove' })
      t.equal(own.statusCode, 400, 'your own password needs the current one')
      t.match(own.json().message, 'current password', 'your own password needs the current one')
    })

    t.test('PUT /users/{id}/enabled: disabled users\' keys and sessions fail at once', async (t) => {
      const { app, admin, basic, keys } = await setup(t)
      const bobKeys = await keysFor(app, basic)
      const bob = new Client(app)
      await bob.signIn(basic.username)
      t.equal((await call(app, bobKeys, 'GET', '/api/session')).statusCode, 200, 'Bob\'s keys work before he is disabled')
      const off = await call(app, keys, 'PUT', `/api/users/${basic.id}/enabled`, { enabled: false })
      t.equal(off.statusCode, 200, 'an Administrator disables Bob')
      t.match(off.json(), { enabled: false }, 'the answer says disabled')
      t.equal((await call(app, bobKeys, 'GET', '/api/session')).statusCode, 401, 'keys refused')
      t.equal((await bob.get('/accounts')).statusCode, 303, 'session ended')
      const on = await call(app, keys, 'PUT', `/users/${basic.uuid}/enabled`, { enabled: 'true' }, { form: true })
      t.match(on.json(), { enabled: true }, 'a form enables Bob again')
      t.equal((await call(app, bobKeys, 'GET', '/api/session')).statusCode, 401, 'enabling again does not revive the revoked keys')
      const self = await call(app, keys, 'PUT', `/api/users/${admin.id}/enabled`, { enabled: false })
      t.equal(self.statusCode, 409, 'you cannot disable yourself')
      t.match(self.json().message, 'You cannot disable yourself', 'the refusal says so')
      t.equal((await call(app, keys, 'PUT', `/api/users/${basic.id}/enabled`, {})).statusCode, 400, 'a missing enabled answers 400')
    })

    t.test('PUT /users/{id}/keys replaces that user\'s keys', async (t) => {
      const { app, basic, keys } = await setup(t)
      const old = await keysFor(app, basic)
      const res = await call(app, keys, 'PUT', `/api/users/${basic.uuid}/keys`)
      t.equal(res.statusCode, 200, 'an Administrator replaces Bob\'s keys')
      const k = res.json() as { accessKey: string; secretKey: string }
      t.match(k, { accessKey: /^[0-9a-f]{64}$/, secretKey: /^[0-9a-f]{64}$/ }, 'the new keys are 64 hex digits each')
      t.equal((await call(app, old, 'GET', '/api/session')).statusCode, 401, 'old keys fail')
      const fresh = await call(app, `accessKey=${k.accessKey};secretKey=${k.secretKey}`, 'GET', '/api/session')
      t.equal(fresh.statusCode, 200, 'the new keys work')
      t.equal(fresh.json().uuid, basic.uuid, 'the keys act as that user')
      await call(app, keys, 'PUT', `/api/users/${basic.id}/enabled`, { enabled: false })
      t.equal((await call(app, `accessKey=${k.accessKey};secretKey=${k.secretKey}`, 'GET', '/api/session')).statusCode, 401, 'a disabled user\'s keys fail')
      const event = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'api_keys.generate').executeTakeFirst()
      t.match(event, { actor_name: 'ada@example.com', target_name: basic.username }, 'the replacement is audited with both names')
    })

    t.test('DELETE /users/{id}: only a disabled user, with a valid successor; objects move', async (t) => {
      const { app, admin, basic, keys } = await setup(t)
      const heir = await createUser(app, { role: 32, username: 'heir@example.com' })
      const off = await createUser(app, { role: 32, enabled: 0 })
      const now = Date.now()
      const acct = await createAccount(app, { container_name: 'Made By Bob', created_by: basic.id })
      const other = await createAccount(app, { container_name: 'Made By Ada', created_by: admin.id })
      const logo = await app.db.insertInto('logos').values({ uuid: uuid(), name: 'Bob logo', filename: 'bob.png', png: Buffer.from([1, 2, 3]), width: 10, height: 10, created_by: basic.id, created_at: now, updated_at: now }).returning('id').executeTakeFirstOrThrow()
      await app.db.insertInto('saved_searches').values({ uuid: uuid(), user_id: basic.id, name: 'Mine', query: 'q=acme', created_at: now }).execute()
      await app.db.insertInto('account_name_history').values({ uuid: uuid(), account_id: acct.id, user_id: basic.id, user_name: basic.username, old_value: null, new_value: 'Custom', created_at: now }).execute()
      const bob = new Client(app)
      await bob.signIn(basic.username)

      const enabled = await call(app, keys, 'DELETE', `/api/users/${basic.id}?successor_user_uuid=${heir.uuid}`)
      t.equal(enabled.statusCode, 409, 'an enabled user cannot be deleted')
      t.match(enabled.json().message, 'Disable the user', 'the refusal says to disable the user first')
      await call(app, keys, 'PUT', `/api/users/${basic.id}/enabled`, { enabled: false })

      for (const query of ['', '?successor_user_uuid=', '?successor_user_uuid=nope', `?successor_user_uuid=${uuid()}`, `?successor_user_uuid=${basic.uuid}`, `?successor_user_uuid=${off.uuid}`]) {
        const res = await call(app, keys, 'DELETE', `/api/users/${basic.id}${query}`)
        t.equal(res.statusCode, 400, `successor ${query || '(none)'}`)
        t.match(res.json(), { statusCode: 400, error: 'Bad Request' }, 'a bad successor is a JSON 400')
      }
      t.ok(await userRow(app, basic.id), 'nothing changed')
      t.equal((await app.db.selectFrom('accounts').select('created_by').where('id', '=', acct.id).executeTakeFirstOrThrow()).created_by, basic.id, 'the refused deletes left Bob\'s accounts his')

      const res = await call(app, keys, 'DELETE', `/users/${basic.uuid}?successor_user_uuid=${heir.uuid}`)
      t.equal(res.statusCode, 200, 'a disabled user with a valid successor is deleted')
      t.notOk(await userRow(app, basic.id), 'deleted')
      t.equal((await app.db.selectFrom('accounts').select('created_by').where('id', '=', acct.id).executeTakeFirstOrThrow()).created_by, heir.id, 'accounts move')
      t.equal((await app.db.selectFrom('accounts').select('created_by').where('id', '=', other.id).executeTakeFirstOrThrow()).created_by, admin.id, 'others\' accounts stay')
      t.equal((await app.db.selectFrom('logos').select('created_by').where('id', '=', logo.id).executeTakeFirstOrThrow()).created_by, heir.id, 'logos move')
      t.equal((await app.db.selectFrom('saved_searches').selectAll().where('user_id', '=', basic.id).execute()).length, 0, 'saved searches deleted')
      const history = await app.db.selectFrom('account_name_history').selectAll().where('account_id', '=', acct.id).executeTakeFirstOrThrow()
      t.match(history, { user_id: null, user_name: basic.username }, 'the name history keeps the name')
      const signIns = await app.db.selectFrom('audit_events').selectAll().where('actor_name', '=', basic.username).execute()
      t.ok(signIns.length >= 1, 'the audit log keeps the name')
      t.ok(signIns.every((e) => e.actor_user_id === null), 'the deleted user\'s audit entries no longer point at the user')
      const event = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.delete').executeTakeFirstOrThrow()
      t.match(event, { actor_name: admin.username, target_name: basic.username }, 'event matches { actor_name: admin.username, target_name: basic.username }')
      t.match(JSON.parse(event.fields), { successor: heir.username, accounts_moved: 1, logos_moved: 1, saved_searches_deleted: 1 }, 'the delete audit counts what moved')
      t.equal((await call(app, keys, 'DELETE', `/api/users/${basic.id}?successor_user_uuid=${heir.uuid}`)).statusCode, 404, 'gone')
    })

    t.test('the last enabled Administrator cannot be disabled, demoted or deleted', async (t) => {
      const { app, admin, keys } = await setup(t)
      const demote = await call(app, keys, 'PUT', `/api/users/${admin.id}`, { permissions: 32 })
      t.equal(demote.statusCode, 409, 'the last Administrator cannot be demoted')
      t.match(demote.json().message, 'last enabled Administrator', 'the refusal names the last enabled Administrator')
      const disable = await call(app, keys, 'PUT', `/api/users/${admin.id}`, { enabled: false, name: 'Renamed' })
      t.equal(disable.statusCode, 409, 'the last Administrator cannot be disabled through PUT /users/{id}')
      t.equal((await call(app, keys, 'PUT', `/api/users/${admin.id}/enabled`, { enabled: false })).statusCode, 409, 'nor through PUT /users/{id}/enabled')
      t.equal((await call(app, keys, 'DELETE', `/api/users/${admin.id}?successor_user_uuid=${admin.uuid}`)).statusCode, 409, 'nor deleted')
      const row = await userRow(app, admin.id)
      t.match(row, { role: 64, enabled: 1, name: 'Ada Admin' }, 'nothing changed, not even the name')
      t.equal((await call(app, keys, 'GET', `/api/users/${admin.id}`)).json().undeletable, true, 'the last Administrator is marked undeletable')

      // With a second Administrator, one may be demoted; then the other is the last again.
      const second = await createUser(app, { role: 64, username: 'second@example.com' })
      const secondKeys = await keysFor(app, second)
      t.equal((await call(app, secondKeys, 'PUT', `/api/users/${admin.id}`, { permissions: 40 })).statusCode, 200, 'with a second Administrator the first may be demoted')
      const again = await call(app, secondKeys, 'PUT', `/api/users/${second.id}`, { permissions: 16 })
      t.equal(again.statusCode, 409, 'then the second cannot be demoted')
      t.equal((await call(app, secondKeys, 'GET', `/api/users/${second.id}`)).json().undeletable, true, 'and is marked undeletable')
    })

    t.test('authorizations: API keys and password sign-in per user', async (t) => {
      const { app, admin, basic, keys } = await setup(t)
      const bobKeys = await keysFor(app, basic)
      const get = await call(app, keys, 'GET', `/api/users/${basic.id}/authorizations`)
      t.equal(get.statusCode, 200, 'an Administrator reads a user\'s authorizations')
      t.same(get.json(), { account_uuid: PORTAL_CONTAINER_UUID, user_uuid: basic.uuid, api_permitted: true, password_permitted: true, saml_permitted: false }, 'by default API and password sign-in are permitted, SAML not')

      const noApi = await call(app, keys, 'PUT', `/api/users/${basic.uuid}/authorizations`, { api_permitted: false, password_permitted: true, saml_permitted: false })
      t.equal(noApi.statusCode, 200, 'API access is withdrawn')
      t.match(noApi.json(), { api_permitted: false, password_permitted: true, saml_permitted: false }, 'the answer shows API access withdrawn')
      const refused = await call(app, bobKeys, 'GET', '/api/session')
      t.equal(refused.statusCode, 401, 'api_permitted=false: their keys get 401')
      t.match((await call(app, keys, 'GET', `/api/users/${basic.id}`)).json(), { api_permitted: false, ui_permitted: true }, 'the user object shows API access withdrawn')

      const bob = new Client(app)
      await bob.signIn(basic.username)
      t.equal((await bob.get('/accounts')).statusCode, 200, 'password sign-in still works')
      const noPassword = await call(app, keys, 'PUT', `/users/${basic.id}/authorizations`, { password_permitted: 'false' }, { form: true })
      t.equal(noPassword.statusCode, 200, 'password sign-in is withdrawn by a form')
      t.match(noPassword.json(), { api_permitted: false, password_permitted: false }, 'the answer shows both withdrawn')
      t.equal((await bob.get('/accounts')).statusCode, 303, 'their session ended')
      const again = await new Client(app).signIn(basic.username)
      t.equal(again.statusCode, 401, 'password sign-in refused')
      t.match(again.body, 'Invalid username or password.', 'with the usual generic message')
      t.match((await call(app, keys, 'GET', `/api/users/${basic.id}`)).json(), { ui_permitted: false }, 'the user object shows no UI access')

      const back = await call(app, keys, 'PUT', `/api/users/${basic.id}/authorizations`, { api_permitted: true, password_permitted: true })
      t.match(back.json(), { api_permitted: true, password_permitted: true }, 'both are permitted again')
      t.equal((await call(app, bobKeys, 'GET', '/api/session')).statusCode, 200, 'keys work again')
      t.equal((await new Client(app).signIn(basic.username)).headers.location, '/accounts', 'sign-in works again')

      const saml = await call(app, keys, 'PUT', `/api/users/${basic.id}/authorizations`, { saml_permitted: true })
      t.equal(saml.statusCode, 400, 'SAML cannot be permitted')
      t.match(saml.json().message, 'SAML', 'the refusal names SAML')
      t.equal((await call(app, keys, 'PUT', `/api/users/${basic.id}/authorizations`, { api_permitted: 'perhaps' })).statusCode, 400, 'a value that is not a boolean answers 400')
      const own = await call(app, keys, 'PUT', `/api/users/${admin.id}/authorizations`, { password_permitted: false })
      t.equal(own.statusCode, 409, 'not your own password sign-in')
      t.equal((await call(app, keys, 'GET', `/api/users/${uuid()}/authorizations`)).statusCode, 404, 'an unknown user answers 404')
      const events = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.authorizations_update').orderBy('created_at').execute()
      t.equal(events.length, 3, 'events.length is 3')
      t.match(JSON.parse(events[1]!.fields), { api_permitted: false, password_permitted: false }, 'JSON.parse(events[1].fields) matches { api_permitted: false, password_permitted: false }')
    })

    t.test('X-Impersonate: an Administrator acts as another user, audited with both names', async (t) => {
      const { app, admin, basic, keys } = await setup(t)
      const acme = await createAccount(app, { container_name: 'Acme Impersonated' })
      await createAccount(app, { container_name: 'Bluefin Hidden' })
      await assign(app, basic.id, [acme.id])
      const as = (username: string) => ({ headers: { 'x-impersonate': `username=${username}` } })

      const mine = await call(app, keys, 'GET', '/api/mssp/accounts', undefined, as(basic.username))
      t.equal(mine.statusCode, 200, 'X-Impersonate as Bob lists accounts')
      t.same(mine.json().accounts.map((a: { container_name: string }) => a.container_name), ['Acme Impersonated'], 'only that user\'s accounts')
      const all = await call(app, keys, 'GET', '/mssp/accounts')
      t.equal(all.json().accounts.length, 2, 'without the header: every account')
      const session = await call(app, keys, 'GET', '/api/session', undefined, as(basic.username))
      t.equal(session.json().uuid, basic.uuid, 'the session is Bob\'s')
      t.equal((await call(app, keys, 'GET', '/api/users', undefined, as(basic.username))).statusCode, 403, 'acting as a Basic user: no Users API')
      t.equal((await call(app, keys, 'PUT', '/api/session/keys', undefined, as(basic.username))).statusCode, 403, 'the user\'s keys stay theirs')

      const bobKeys = await keysFor(app, basic)
      const byBasic = await call(app, bobKeys, 'GET', '/api/mssp/accounts', undefined, as(admin.username))
      t.equal(byBasic.statusCode, 403, 'a non-Administrator cannot impersonate')
      t.equal((await call(app, keys, 'GET', '/api/session', undefined, as('nobody@example.com'))).statusCode, 404, 'impersonating an unknown user answers 404')
      t.equal((await call(app, keys, 'GET', '/api/session', undefined, as(admin.username))).statusCode, 409, 'not yourself')
      t.equal((await call(app, keys, 'GET', '/api/session', undefined, { headers: { 'x-impersonate': 'bob' } })).statusCode, 400, 'a malformed X-Impersonate answers 400')

      // Acting as another Administrator, a change is audited with both names.
      const other = await createUser(app, { role: 64, username: 'otto@example.com' })
      const res = await call(app, keys, 'PUT', `/api/users/${basic.id}/enabled`, { enabled: false }, as(other.username))
      t.equal(res.statusCode, 200, 'acting as another Administrator, a change is made')
      const event = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.disable').executeTakeFirstOrThrow()
      t.match(event, { actor_name: other.username, actor_user_id: other.id, assisting_name: admin.username, assisting_user_id: admin.id, target_name: basic.username }, 'the audit names the impersonated and the impersonating Administrator')
      t.equal((await call(app, keys, 'GET', '/api/session', undefined, as(basic.username))).statusCode, 409, 'not a disabled user')
      t.equal((await call(app, keys, 'PUT', `/api/users/${other.id}/keys`, undefined, as(other.username))).statusCode, 403, 'not the impersonated user\'s own keys')
    })

    t.test('the OpenAPI document describes the users endpoints with their inputs', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const doc = (await app.inject({ url: '/api/openapi.json' })).json() as { paths: Record<string, Record<string, any>> }
      for (const path of ['/api/users', '/api/users/{id}', '/api/users/{id}/chpasswd', '/api/users/{id}/enabled', '/api/users/{id}/keys', '/api/users/{id}/authorizations']) t.ok(doc.paths[path], path)
      const create = doc.paths['/api/users']!.post
      const schema = create.requestBody.content['application/json'].schema
      t.match(Object.keys(schema.properties), ['username', 'password', 'permissions', 'name', 'email'], 'Object.keys(schema.properties) matches [\'username\', \'password\', \'permissions\', \'name\', \'email\']')
      t.ok(doc.paths['/api/users/{id}']!.delete.parameters.some((p: { name: string }) => p.name === 'successor_user_uuid'), 'DELETE /users/{id} documents successor_user_uuid')
      t.same(Object.keys(doc.paths['/api/users/{id}/authorizations']!.get.responses['200'].content['application/json'].schema.properties).sort(), ['account_uuid', 'api_permitted', 'password_permitted', 'saml_permitted', 'user_uuid'], 'the authorizations answer documents its fields')
    })
  })
}
