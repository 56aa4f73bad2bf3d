// While an Administrator assists (or, with API keys, impersonates) a user, that user's
// authorizations cannot be changed (PUT /users/{id}/authorizations) nor the user disabled
// (Users > Disable, PUT /users/{id}/enabled, PUT /users/{id}): like their credentials, the
// assisted user's access stays theirs. Other users' can.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { User } from '../../src/db/schema.ts'
import { type Tap, apiKeysFor, Client, buildTestApp, createUser, dialects } from '../helper.ts'
import { ASSISTED_ACCESS } from '../../src/areas/users/service.ts'

const keysFor = async (app: FastifyInstance, user: User): Promise<string> => (await apiKeysFor(app, user)).header

async function row(app: FastifyInstance, user: User) {
  return app.db.selectFrom('users').select(['enabled', 'api_permitted', 'password_permitted']).where('id', '=', user.id).executeTakeFirstOrThrow()
}

for (const dialect of dialects) {
  t.test(`${dialect}: the assisted user's access stays theirs`, async (t) => {
    async function setup(t: Tap) {
      const { app } = await buildTestApp(t, dialect)
      const ada = await createUser(app, { role: 64, name: 'Ada Admin', username: 'ada@example.com' })
      const xena = await createUser(app, { role: 64, name: 'Xena Admin', username: 'xena@example.com' })
      const bob = await createUser(app, { role: 16, name: 'Bob Basic', username: 'bob@example.com' })
      return { app, ada, xena, bob }
    }

    t.test('assisting in the browser', async (t) => {
      const { app, xena, bob } = await setup(t)
      const a = new Client(app)
      await a.signIn('ada@example.com')
      await a.get('/users')
      t.equal((await a.post(`/users/${xena.uuid}/assist`)).statusCode, 303, `POST /users/${xena.uuid}/assist answers 303`)
      await a.get('/users')
      const api = (method: 'PUT', url: string, payload: Record<string, unknown>) =>
        app.inject({ method, url, headers: { ...a.headers(), 'x-csrf-token': a.csrf }, payload })

      const authz = await api('PUT', `/api/users/${xena.id}/authorizations`, { api_permitted: false })
      t.equal(authz.statusCode, 403, `authorizations of the assisted user refused (${authz.body})`)
      t.match(authz.json(), { message: ASSISTED_ACCESS }, 'the refusal says why assisted access cannot do this')
      t.equal((await row(app, xena)).api_permitted, 1, 'unchanged')

      await a.get(`/users/${xena.uuid}/disable`)
      const disable = await a.post(`/users/${xena.uuid}/disable`)
      t.equal(disable.statusCode, 403, 'Users > Disable of the assisted user refused')
      t.match(disable.body, ASSISTED_ACCESS, `the answer to POST /users/${xena.uuid}/disable shows ${ASSISTED_ACCESS}`)
      const viaApi = await api('PUT', `/api/users/${xena.id}/enabled`, { enabled: false })
      t.equal(viaApi.statusCode, 403, 'PUT /users/{id}/enabled refused')
      const viaEdit = await api('PUT', `/api/users/${xena.id}`, { enabled: false })
      t.equal(viaEdit.statusCode, 403, 'PUT /users/{id} with enabled false refused')
      t.equal((await row(app, xena)).enabled, 1, 'the assisted user stays enabled')

      const other = await api('PUT', `/api/users/${bob.id}/authorizations`, { api_permitted: false })
      t.equal(other.statusCode, 200, `another user's authorizations can change (${other.body})`)
      t.equal((await row(app, bob)).api_permitted, 0, '(row(app, bob)).api_permitted is 0')
    })

    t.test('impersonating with X-Impersonate', async (t) => {
      const { app, ada, xena } = await setup(t)
      const headers = { 'x-apikeys': await keysFor(app, ada), 'x-impersonate': `username=${xena.username}` }
      const authz = await app.inject({ method: 'PUT', url: `/api/users/${xena.id}/authorizations`, headers, payload: { password_permitted: false } })
      t.equal(authz.statusCode, 403, authz.body)
      const disable = await app.inject({ method: 'PUT', url: `/api/users/${xena.id}/enabled`, headers, payload: { enabled: false } })
      t.equal(disable.statusCode, 403, disable.body)
      t.same(await row(app, xena), { enabled: 1, api_permitted: 1, password_permitted: 1 }, 'nothing changed')
    })
  })
}
