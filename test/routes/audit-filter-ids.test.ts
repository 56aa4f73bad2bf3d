import t from 'tap'
import { Client, buildTestApp, createUser, dialects } from '../helper.ts'

// Issue 15, item 17's sibling: an actor id outside the id column's range was a 500 on
// PostgreSQL ("out of range for type integer"); it names no one, so the answer is no events.
for (const dialect of dialects) {
  t.test(`${dialect}: an actor id filter outside the column's range finds nothing, never a 500`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const admin = await createUser(app, { role: 64 })
    const client = new Client(app)
    await client.signIn(admin.username)
    await client.get('/accounts')
    const keys = (await app.inject({ method: 'PUT', url: '/api/session/keys', headers: { ...client.headers(), 'x-csrf-token': client.csrf } })).json() as { accessKey: string; secretKey: string }
    const headers = { 'x-apikeys': `accessKey=${keys.accessKey};secretKey=${keys.secretKey}` }
    const own = await app.inject({ url: `/api/audit-log/v1/events?f=actor_id.eq:${admin.id}`, headers })
    t.equal(own.statusCode, 200)
    t.ok((own.json() as { events: unknown[] }).events.length > 0, 'a real id still finds its events')
    for (const id of ['999999999999', '2147483648', '0', '00000000000000000001234']) {
      const res = await app.inject({ url: `/api/audit-log/v1/events?f=actor_id.eq:${id}`, headers })
      t.equal(res.statusCode, 200, `actor_id.eq:${id}`)
      t.same((res.json() as { events: unknown[] }).events, [], `actor_id.eq:${id} names no one`)
    }
  })
}
