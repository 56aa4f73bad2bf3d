import t from 'tap'
import { Client, apiKeysFor, buildTestApp, createUser, dialects } from '../helper.ts'

// Issue 15, item 17's sibling: an actor id outside the id column's range was a 500 on
// PostgreSQL ("out of range for type integer"); it names no one, so the answer is no events.
for (const dialect of dialects) {
  t.test(`${dialect}: an actor id filter outside the column's range finds nothing, never a 500`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const admin = await createUser(app, { role: 64 })
    await new Client(app).signIn(admin.username) // an event of the Administrator's own, for the real id below
    const { headers } = await apiKeysFor(app, admin)
    const own = await app.inject({ url: `/api/audit-log/v1/events?f=actor_id.eq:${admin.id}`, headers })
    t.equal(own.statusCode, 200, `GET /api/audit-log/v1/events?f=actor_id.eq:${admin.id} answers 200`)
    t.ok((own.json() as { events: unknown[] }).events.length > 0, 'a real id still finds its events')
    for (const id of ['999999999999', '2147483648', '0', '00000000000000000001234']) {
      const res = await app.inject({ url: `/api/audit-log/v1/events?f=actor_id.eq:${id}`, headers })
      t.equal(res.statusCode, 200, `actor_id.eq:${id}`)
      t.same((res.json() as { events: unknown[] }).events, [], `actor_id.eq:${id} names no one`)
    }
  })
}
