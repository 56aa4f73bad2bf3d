// When an Administrator sets another user's password (Edit User, PUT /users/{id}/chpasswd)
// or resets their two-factor authentication (Users > Reset 2FA), the user is mailed a notice,
// as for the changes they make themselves.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { User } from '../../src/db/schema.ts'
import { type Tap, apiKeysFor, NEW_PASSWORD, Client, buildTestApp, createUser, dialects, lastMessageTo } from '../helper.ts'
import { findTwoFactor, upsertTwoFactor } from '../../src/areas/two-factor/repository.ts'

const keysFor = async (app: FastifyInstance, user: User): Promise<string> => (await apiKeysFor(app, user)).header

for (const dialect of dialects) {
  t.test(`${dialect}: notices for changes an Administrator makes`, async (t) => {
    async function setup(t: Tap) {
      const { app } = await buildTestApp(t, dialect)
      const ada = await createUser(app, { role: 64, name: 'Ada Admin', username: 'ada@example.com' })
      const bob = await createUser(app, { role: 16, name: 'Bob Basic', username: 'bob@example.com', email: 'bob.mail@example.com' })
      const a = new Client(app)
      await a.signIn(ada.username)
      await a.get('/users')
      return { app, ada, bob, a }
    }

    t.test('Edit User with a new password mails the user', async (t) => {
      const { app, bob, a } = await setup(t)
      const b = new Client(app)
      await b.signIn(bob.username)
      await a.get(`/users/${bob.uuid}/edit`)
      const edit = await a.post(`/users/${bob.uuid}/edit`, { name: 'Bob Basic', email: 'bob.mail@example.com', password: NEW_PASSWORD, confirm: NEW_PASSWORD, role: '16' })
      t.equal(edit.statusCode, 303, edit.body.slice(0, 300))
      const notice = await lastMessageTo(app, 'bob.mail@example.com')
      t.equal(notice?.subject, 'Your MSSP Portal password was changed', 'the user is mailed the password notice')
      t.match(notice?.body, /was set by an Administrator, every session was signed out/, 'the notice says an Administrator set it and sessions ended')
      t.equal((await b.get('/accounts')).statusCode, 303, "the user's session ended")
      const events = await app.db.selectFrom('audit_events').select('action').where('action', 'like', 'user.%').execute()
      t.equal(events.filter((e) => e.action === 'user.update').length, 1, 'one user.update event records it')
    })

    t.test('PUT /users/{id}/chpasswd for another user mails the user', async (t) => {
      const { app, ada, bob } = await setup(t)
      const res = await app.inject({ method: 'PUT', url: `/api/users/${bob.id}/chpasswd`, headers: { 'x-apikeys': await keysFor(app, ada) }, payload: { password: NEW_PASSWORD } })
      t.equal(res.statusCode, 200, res.body)
      t.match((await lastMessageTo(app, 'bob.mail@example.com'))?.body, /was set by an Administrator/, 'the API password change mails the same notice')
    })

    t.test('Reset 2FA mails the user', async (t) => {
      const { app, bob, a } = await setup(t)
      await upsertTwoFactor(app.db, bob.id, { sms_phone: '+15551234567' })
      await a.get(`/users/${bob.uuid}/reset-2fa`)
      const reset = await a.post(`/users/${bob.uuid}/reset-2fa`)
      t.ok([200, 204, 303].includes(reset.statusCode), `reset (${reset.statusCode})`)
      t.notOk(await findTwoFactor(app.db, bob.id), 'the second factor is gone')
      const notice = await lastMessageTo(app, 'bob.mail@example.com')
      t.equal(notice?.subject, 'Two-factor authentication was changed on your MSSP Portal account', 'the user is mailed the two-factor notice')
      t.match(notice?.body, /An Administrator reset two-factor authentication/, 'the notice says an Administrator reset it')
      const event = await app.db.selectFrom('audit_events').select('action').where('action', '=', 'user.two_factor_reset').execute()
      t.equal(event.length, 1, 'audited once')
    })
  })
}
