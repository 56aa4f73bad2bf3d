import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { User } from '../../src/db/schema.ts'
import { type Tap, apiKeysFor, NEW_PASSWORD, Client, PASSWORD, buildTestApp, createUser, dialects, lastMessageTo } from '../helper.ts'
import { findTwoFactor, upsertTwoFactor } from '../../src/areas/two-factor/repository.ts'
import { ASSISTING_MESSAGE } from '../../src/areas/my-account/service.ts'
import { uuid } from '../../src/lib/tokens.ts'

// The Users pages and API: whose credentials they may change (not one's own password or
// 2FA, not the assisted user's), API keys revoked on disable and reset, and user ids that
// name no row answered 404 on both databases.

const OWN_PASSWORD = 'Change your own password in My Account'

const keysFor = async (app: FastifyInstance, user: User): Promise<string> => (await apiKeysFor(app, user)).header

async function hasKeys(app: FastifyInstance, user: User): Promise<boolean> {
  return Boolean(await app.db.selectFrom('api_keys').select('user_id').where('user_id', '=', user.id).executeTakeFirst())
}

async function passwordHash(app: FastifyInstance, user: User): Promise<string> {
  return (await app.db.selectFrom('users').select('password_hash').where('id', '=', user.id).executeTakeFirstOrThrow()).password_hash
}

async function lastEvent(app: FastifyInstance, action: string) {
  const event = await app.db.selectFrom('audit_events').selectAll().where('action', '=', action).orderBy('created_at', 'desc').executeTakeFirstOrThrow()
  return { ...event, fields: JSON.parse(event.fields) as Record<string, unknown> }
}

for (const dialect of dialects) {
  t.test(`${dialect}: Users hardening`, async (t) => {
    async function setup(t: Tap) {
      const { app } = await buildTestApp(t, dialect)
      const ada = await createUser(app, { role: 64, name: 'Ada Admin', username: 'ada@example.com' })
      const xena = await createUser(app, { role: 64, name: 'Xena Admin', username: 'xena@example.com' })
      const bob = await createUser(app, { role: 16, name: 'Bob Basic', username: 'bob@example.com' })
      const a = new Client(app)
      await a.signIn(ada.username)
      await a.get('/users')
      return { app, ada, xena, bob, a }
    }

    t.test('assisting an Administrator: the Users pages leave their password, API keys and 2FA alone', async (t) => {
      const { app, ada, xena, a } = await setup(t)
      await upsertTwoFactor(app.db, xena.id, { sms_phone: '+15551234567' })
      const xenaKeys = await keysFor(app, xena)
      t.equal((await a.post(`/users/${xena.uuid}/assist`)).statusCode, 303, `POST /users/${xena.uuid}/assist answers 303`)
      const before = await passwordHash(app, xena)

      const form = await a.get(`/users/${xena.uuid}/edit`)
      t.equal(form.statusCode, 200, 'the assisted Administrator reaches Users')
      t.notMatch(form.body, 'id="password"', 'no password field for the assisted user')
      t.match(form.body, ASSISTING_MESSAGE, `the answer to GET /users/${xena.uuid}/edit shows ${ASSISTING_MESSAGE}`)
      t.notMatch(form.body, 'Generate API Keys</a>', 'nor the Generate API Keys button')
      const edit = await a.post(`/users/${xena.uuid}/edit`, { name: 'Xena Admin', email: '', password: NEW_PASSWORD, confirm: NEW_PASSWORD, role: '64' })
      t.equal(edit.statusCode, 422, 'a password posted anyway is refused')
      t.match(edit.body, ASSISTING_MESSAGE, `the answer to POST /users/${xena.uuid}/edit shows ${ASSISTING_MESSAGE}`)
      t.equal(await passwordHash(app, xena), before, 'the password is unchanged')

      await a.get(`/users/${xena.uuid}/keys`)
      const keys = await a.post(`/users/${xena.uuid}/keys`)
      t.equal(keys.statusCode, 403, 'no new API keys for the assisted user')
      t.match(keys.body, ASSISTING_MESSAGE, `the answer to POST /users/${xena.uuid}/keys shows ${ASSISTING_MESSAGE}`)
      t.equal((await app.inject({ url: '/api/session', headers: { 'x-apikeys': xenaKeys } })).statusCode, 200, 'their keys are the same')

      await a.get(`/users/${xena.uuid}/reset-2fa`)
      const reset = await a.post(`/users/${xena.uuid}/reset-2fa`)
      t.equal(reset.statusCode, 403, 'no 2FA reset for the assisted user')
      t.match(reset.body, ASSISTING_MESSAGE, `the answer to POST /users/${xena.uuid}/reset-2fa shows ${ASSISTING_MESSAGE}`)
      t.ok(await findTwoFactor(app.db, xena.id), 'their second factor stays')

      // The Administrator behind the assist is still not to change their own password here.
      await a.get(`/users/${ada.uuid}/edit`)
      const own = await a.post(`/users/${ada.uuid}/edit`, { name: 'Ada Admin', email: '', password: NEW_PASSWORD, confirm: NEW_PASSWORD, role: '64' })
      t.equal(own.statusCode, 422, `POST /users/${ada.uuid}/edit answers 422`)
      t.match(own.body, OWN_PASSWORD, `the answer to POST /users/${ada.uuid}/edit shows ${OWN_PASSWORD}`)
      t.equal((await app.db.selectFrom('audit_events').select('id').where('action', 'in', ['user.update', 'api_keys.generate', 'user.two_factor_reset']).execute()).length, 0, 'nothing changed')
    })

    t.test('Edit User never sets one\'s own password: My Account does, with the current one', async (t) => {
      const { app, ada, a } = await setup(t)
      const form = await a.get(`/users/${ada.uuid}/edit`)
      t.equal(form.statusCode, 200, `GET /users/${ada.uuid}/edit answers 200`)
      t.notMatch(form.body, 'id="password"', 'no password field on one\'s own Edit User')
      t.match(form.body, OWN_PASSWORD, `the answer to GET /users/${ada.uuid}/edit shows ${OWN_PASSWORD}`)
      t.match(form.body, 'href="/my-account"', `the answer to GET /users/${ada.uuid}/edit shows 'href="/my-account"'`)
      const before = await passwordHash(app, ada)
      const weak = await a.post(`/users/${ada.uuid}/edit`, { name: 'Ada Admin', email: '', password: 'weakweak', confirm: 'weakweak', role: '64' })
      t.equal(weak.statusCode, 422, `POST /users/${ada.uuid}/edit answers 422`)
      t.match(weak.body, OWN_PASSWORD, `the answer to POST /users/${ada.uuid}/edit shows ${OWN_PASSWORD}`)
      await a.get(`/users/${ada.uuid}/edit`)
      const strong = await a.post(`/users/${ada.id}/edit`, { name: 'Ada Admin', email: '', password: NEW_PASSWORD, confirm: NEW_PASSWORD, role: '64' })
      t.equal(strong.statusCode, 422, 'by the integer id too')
      t.equal(await passwordHash(app, ada), before, 'the password is unchanged')
      t.equal((await new Client(app).signIn(ada.username, PASSWORD)).statusCode, 303, 'the old password still signs in')
      await a.get(`/users/${ada.uuid}/edit`)
      const rename = await a.post(`/users/${ada.uuid}/edit`, { name: 'Ada Renamed', email: '', password: '', confirm: '', role: '64' })
      t.equal(rename.statusCode, 303, 'the rest of one\'s own Edit User still saves')

      await upsertTwoFactor(app.db, ada.id, { sms_phone: '+15551234567' })
      await a.get('/users')
      const reset = await a.post(`/users/${ada.uuid}/reset-2fa`)
      t.equal(reset.statusCode, 403, 'nor resets one\'s own 2FA (My Account asks for the password)')
      t.match(reset.body, 'Manage your own two-factor authentication in My Account.', `the answer to POST /users/${ada.uuid}/reset-2fa shows 'Manage your own two-factor authentication in My Account.'`)
      t.ok(await findTwoFactor(app.db, ada.id), 'findTwoFactor(app.db, ada.id)')
    })

    t.test('disabling a user revokes their API keys; enabling them again does not revive them', async (t) => {
      const { app, ada, bob, xena, a } = await setup(t)
      const adaKeys = await keysFor(app, ada)
      const bobKeys = await keysFor(app, bob)
      await a.get(`/users/${bob.uuid}/disable`)
      t.equal((await a.post(`/users/${bob.uuid}/disable`)).statusCode, 200, `POST /users/${bob.uuid}/disable answers 200`)
      t.notOk(await hasKeys(app, bob), 'the keys are gone')
      t.same((await lastEvent(app, 'user.disable')).fields, { keys_revoked: true }, 'audited on the disable event')
      await a.get(`/users/${bob.uuid}/enable`)
      t.equal((await a.post(`/users/${bob.uuid}/enable`)).statusCode, 200, `POST /users/${bob.uuid}/enable answers 200`)
      t.equal((await app.inject({ url: '/api/session', headers: { 'x-apikeys': bobKeys } })).statusCode, 401, 'enabled again, the old keys still fail')

      // The API's two ways of disabling revoke too.
      const again = await keysFor(app, bob)
      t.equal((await app.inject({ method: 'PUT', url: `/api/users/${bob.id}/enabled`, headers: { 'x-apikeys': adaKeys }, payload: { enabled: false } })).statusCode, 200, `PUT /api/users/${bob.id}/enabled answers 200`)
      t.notOk(await hasKeys(app, bob), 'no hasKeys(app, bob)')
      await app.inject({ method: 'PUT', url: `/api/users/${bob.id}/enabled`, headers: { 'x-apikeys': adaKeys }, payload: { enabled: true } })
      t.equal((await app.inject({ url: '/api/session', headers: { 'x-apikeys': again } })).statusCode, 401, 'GET /api/session answers 401')
      await keysFor(app, xena)
      t.equal((await app.inject({ method: 'PUT', url: `/api/users/${xena.uuid}`, headers: { 'x-apikeys': adaKeys }, payload: { enabled: false, name: 'Xena Off' } })).statusCode, 200, `PUT /api/users/${xena.uuid} answers 200`)
      t.notOk(await hasKeys(app, xena), 'no hasKeys(app, xena)')
      t.same((await lastEvent(app, 'user.disable')).fields, { keys_revoked: true }, '(lastEvent(app, \'user.disable\')).fields is { keys_revoked: true }')
    })

    t.test('a password reset revokes the user\'s API keys', async (t) => {
      const { app, bob } = await setup(t)
      const bobKeys = await keysFor(app, bob)
      const c = new Client(app)
      await c.get('/forgot-password')
      await c.post('/forgot-password', { username: bob.username })
      const mail = await lastMessageTo(app, bob.username)
      const token = /\/reset-password\?token=([A-Za-z0-9_-]+)/.exec(mail?.body ?? '')?.[1]
      t.ok(token, 'a reset link was sent')
      const r = new Client(app)
      await r.get(`/reset-password?token=${token}`)
      const done = await r.post('/reset-password', { token: token!, password: NEW_PASSWORD, confirm: NEW_PASSWORD })
      t.ok(done.statusCode < 400, 'the reset went through')
      t.equal((await new Client(app).signIn(bob.username, NEW_PASSWORD)).statusCode, 303, 'signing in answers 303')
      t.notOk(await hasKeys(app, bob), 'the keys are gone')
      t.equal((await app.inject({ url: '/api/session', headers: { 'x-apikeys': bobKeys } })).statusCode, 401, 'GET /api/session answers 401')
      t.match((await lastEvent(app, 'auth.password_reset')).fields, { keys_revoked: true }, '(lastEvent(app, \'auth.password_reset\')).fields matches { keys_revoked: true }')
    })

    t.test('a user id that names no row is a 404 on every /users/{id} route, never a 500', async (t) => {
      const { app, ada, a } = await setup(t)
      const keys = await keysFor(app, ada)
      const ids = ['999999999999', '2147483648', '99999999999999999999', '0', '-1', '1e3', '12abc', 'abc', '1.5', uuid(), '00000000-0000-0000-0000-00000000000g']
      const pages: Array<[method: 'GET' | 'POST', suffix: string]> = [
        ['GET', '/edit'], ['POST', '/edit'], ['GET', '/disable'], ['POST', '/disable'], ['GET', '/enable'], ['POST', '/enable'],
        ['GET', '/reset-2fa'], ['POST', '/reset-2fa'], ['POST', '/unlock'], ['GET', '/delete'], ['POST', '/delete'],
        ['GET', '/keys'], ['POST', '/keys'], ['POST', '/assist'],
      ]
      const api: Array<[method: 'GET' | 'PUT' | 'DELETE', suffix: string, body?: Record<string, unknown>]> = [
        ['GET', ''], ['PUT', '', { name: 'X' }], ['PUT', '/chpasswd', { password: NEW_PASSWORD }], ['PUT', '/enabled', { enabled: false }],
        ['PUT', '/keys'], ['DELETE', `?successor_user_uuid=${ada.uuid}`], ['GET', '/authorizations'], ['PUT', '/authorizations', { api_permitted: false }],
      ]
      for (const id of ids) {
        for (const [method, suffix] of pages) {
          const res = method === 'GET' ? await a.get(`/users/${id}${suffix}`) : await a.post(`/users/${id}${suffix}`, { name: 'X', role: '16', successor: ada.uuid, step: 'delete' })
          t.equal(res.statusCode, 404, `page ${method} /users/${id}${suffix}`)
        }
        for (const prefix of ['/api', '']) {
          for (const [method, suffix, body] of api) {
            const res = await app.inject({ method, url: `${prefix}/users/${id}${suffix}`, headers: { 'x-apikeys': keys }, ...(body ? { payload: body as Record<string, string> } : {}) })
            t.equal(res.statusCode, 404, `API ${method} ${prefix}/users/${id}${suffix}`)
            t.equal(res.json().statusCode, 404, 'the JSON body says 404 too')
          }
        }
      }
      t.equal((await a.get(`/users/${ada.id}/edit`)).statusCode, 200, 'a real integer id still works')
      t.equal((await a.get(`/users/${ada.uuid.toUpperCase()}/edit`)).statusCode, 200, 'and a uuid in capitals')
    })
  })
}
