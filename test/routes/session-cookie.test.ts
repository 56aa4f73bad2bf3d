import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { advanceClock, Client, buildTestApp, createUser, PASSWORD } from '../helper.ts'

// The session cookie as secure-session seals it: its age, and what a process remembers of it.

/** The client's session cookie sealed again as if it had been set `ageSeconds` ago. */
function agedCookie(app: FastifyInstance, client: Client, ageSeconds: number): string {
  const value = decodeURIComponent(client.cookie.slice('mssp_session='.length))
  const session = app.decodeSecureSession(value)!
  const aged = app.createSecureSession({ ...session.data(), __ts: Math.round(Date.now() / 1000) - ageSeconds })
  return `mssp_session=${encodeURIComponent(app.encodeSecureSession(aged))}`
}

t.test('a session longer than a day is not cut short by the age of its cookie', async (t) => {
  const { app } = await buildTestApp(t, 'sqlite', { SESSION_MAX_HOURS: '72' })
  const user = await createUser(app)
  const client = new Client(app)
  await client.signIn(user.username, PASSWORD, true)
  const dayAndAHalf = agedCookie(app, client, 36 * 3600)
  t.equal((await app.inject({ url: '/accounts', headers: { cookie: dayAndAHalf } })).statusCode, 200, 'signed in 36 hours after the cookie was set')
  const pastTheLimit = agedCookie(app, client, 73 * 3600)
  t.equal((await app.inject({ url: '/accounts', headers: { cookie: pastTheLimit } })).statusCode, 303, 'a cookie older than the longest session is refused')
})

t.test('a cookie seen before is still checked: its age, and any change to it', async (t) => {
  const { app } = await buildTestApp(t, 'sqlite', { SESSION_MAX_HOURS: '1' })
  const user = await createUser(app)
  const client = new Client(app)
  await client.signIn(user.username)
  // Valid for 2 more seconds (1 hour and 1 minute in all): accepted, and so remembered.
  const expiring = agedCookie(app, client, 3600 + 60 - 2)
  t.equal((await app.inject({ url: '/accounts', headers: { cookie: expiring } })).statusCode, 200, 'a cookie valid for 2 more seconds is accepted')
  advanceClock(t, 3000)
  t.equal((await app.inject({ url: '/accounts', headers: { cookie: expiring } })).statusCode, 303, 'the same cookie, once too old, is refused')

  t.equal((await client.get('/accounts')).statusCode, 200, 'the client\'s own fresh cookie still works')
  const value = decodeURIComponent(client.cookie.slice('mssp_session='.length))
  const flipped = value[0] === 'A' ? `B${value.slice(1)}` : `A${value.slice(1)}`
  t.equal((await app.inject({ url: '/accounts', headers: { cookie: `mssp_session=${encodeURIComponent(flipped)}` } })).statusCode, 303, 'one changed character: refused')
  t.equal((await client.get('/accounts')).statusCode, 200, 'the genuine cookie still works')
})
