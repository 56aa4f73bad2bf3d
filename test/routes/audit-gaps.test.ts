import path from 'node:path'
import Database from 'better-sqlite3'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { type Tap, Client, PASSWORD, buildTestApp, createUser, dialects } from '../helper.ts'
import { parseFields } from '../../src/areas/audit/actions.ts'

// Events the audit log was missing: a failed password change, saved searches, the accounts
// export, an assist ended by its time limit, and refused requests summed up per kind.


async function eventsOf(app: FastifyInstance, action: string) {
  const rows = await app.db.selectFrom('audit_events').selectAll().where('action', '=', action).orderBy('created_at').execute()
  return rows.map((r) => ({ ...r, f: parseFields(r.fields) }))
}

async function signedIn(t: Tap, dialect: (typeof dialects)[number], env: Record<string, string> = {}) {
  const { app, dataDir } = await buildTestApp(t, dialect, env)
  const admin = await createUser(app)
  const basic = await createUser(app, { role: 16 })
  const a = new Client(app)
  await a.signIn(admin.username)
  await a.get('/accounts')
  return { app, dataDir, admin, basic, a }
}

for (const dialect of dialects) {
  t.test(`${dialect}: a wrong current password on My Account is a failed password change`, async (t) => {
    const { app, admin, a } = await signedIn(t, dialect)
    await a.get('/my-account')
    const res = await a.post('/my-account/password', { current_password: 'not-my-password', new_password: 'Another-Horse-43-Battery' })
    t.equal(res.statusCode, 422, 'POST /my-account/password answers 422')
    const [failed] = await eventsOf(app, 'user.password_change')
    t.equal(failed?.outcome, 'failure', 'failed.outcome is \'failure\'')
    t.equal(failed?.actor_user_id, admin.id, `failed.actor_user_id is ${admin.id}`)
    t.equal(failed?.f.reason, 'wrong current password', 'failed.f.reason is \'wrong current password\'')
  })

  t.test(`${dialect}: saved searches created and deleted are audited`, async (t) => {
    const { app, admin, a } = await signedIn(t, dialect)
    t.equal((await a.post('/accounts/saved-searches', { name: 'Expiring in EU', query: 'region=EU&expires=30' })).statusCode, 303, 'POST /accounts/saved-searches answers 303')
    const [created] = await eventsOf(app, 'saved_search.create')
    t.equal(created?.actor_user_id, admin.id, `created.actor_user_id is ${admin.id}`)
    t.equal(created?.target_name, 'Expiring in EU', 'created.target_name is \'Expiring in EU\'')
    t.equal(created?.f.query, 'region=EU&expires=30', 'created.f.query is \'region=EU&expires=30\'')
    await a.get('/accounts')
    t.equal((await a.post(`/accounts/saved-searches/${created!.target_id}/delete`)).statusCode, 303, `POST /accounts/saved-searches/${created!.target_id}/delete answers 303`)
    const [deleted] = await eventsOf(app, 'saved_search.delete')
    t.equal(deleted?.target_id, created!.target_id, `deleted.target_id is ${created!.target_id}`)
    t.equal(deleted?.target_name, 'Expiring in EU', 'deleted.target_name is \'Expiring in EU\'')
  })

  t.test(`${dialect}: the accounts CSV export is audited with its filters`, async (t) => {
    const { app, basic } = await signedIn(t, dialect)
    const b = new Client(app)
    await b.signIn(basic.username)
    const res = await b.get('/accounts/export.csv?q=acme&region=EU')
    t.equal(res.statusCode, 200, 'GET /accounts/export.csv?q=acme&region=EU answers 200')
    const [exported] = await eventsOf(app, 'account.export')
    t.equal(exported?.actor_user_id, basic.id, `exported.actor_user_id is ${basic.id}`)
    t.same(exported?.f, { q: 'acme', region: 'EU' }, 'exported.f is { q: \'acme\', region: \'EU\' }')
  })

  t.test(`${dialect}: an assist ended by its time limit is audited once`, async (t) => {
    const { app, admin, basic, a } = await signedIn(t, dialect, { ASSIST_MAX_MINUTES: '30' })
    t.equal((await a.post(`/users/${basic.uuid}/assist`)).statusCode, 303, `POST /users/${basic.uuid}/assist answers 303`)
    // The assist began 31 minutes ago.
    await app.db.updateTable('sessions').set({ assist_started_at: Date.now() - 31 * 60_000 }).where('user_id', '=', admin.id).where('assist_user_id', 'is not', null).execute()
    const [one, two] = await Promise.all([a.get('/accounts'), a.get('/accounts')])
    t.equal(one.statusCode, 200, 'the first page view after the time limit answers 200')
    t.equal(two.statusCode, 200, 'and so does the concurrent second')
    const ended = await eventsOf(app, 'user.assist_stop')
    t.equal(ended.length, 1, 'one event, however many requests saw it end')
    t.equal(ended[0]?.actor_user_id, admin.id, `ended[0].actor_user_id is ${admin.id}`)
    t.equal(ended[0]?.target_id, basic.uuid, `ended[0].target_id is ${basic.uuid}`)
    t.same(ended[0]?.f, { reason: 'time limit', minutes: 30 }, 'ended[0].f is { reason: \'time limit\', minutes: 30 }')
    t.equal(ended[0]?.assisting_user_id, null, 'ended[0].assisting_user_id is null')
  })

  t.test(`${dialect}: refused requests become one summary per kind, with counts by address`, async (t) => {
    const { app, basic } = await signedIn(t, dialect)
    const b = new Client(app)
    await b.signIn(basic.username)
    await b.get('/accounts')
    for (let i = 0; i < 7; i++) t.equal((await b.get('/audit-log', { 'x-forwarded-for': '203.0.113.9' })).statusCode, 403, 'GET /audit-log answers 403')
    for (let i = 0; i < 3; i++) t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { ...b.headers(), 'content-type': 'application/x-www-form-urlencoded' }, payload: '_csrf=forged' })).statusCode, 403, 'POST /logout answers 403')
    for (let i = 0; i < 4; i++) t.equal((await app.inject({ url: '/api/session', headers: { 'x-apikeys': `accessKey=${'a'.repeat(64)};secretKey=${'b'.repeat(64)}` } })).statusCode, 401, 'GET /api/session answers 401')
    // Nothing is written per request.
    t.same(await eventsOf(app, 'security.refusals'), [], 'no event per refusal')
    await app.refusals.flush()
    const events = await eventsOf(app, 'security.refusals')
    const byKind = Object.fromEntries(events.map((e) => [e.f.kind, e]))
    t.same(Object.keys(byKind).sort(), ['api_key', 'csrf', 'forbidden'], 'Object.keys(byKind).sort() is [\'api_key\', \'csrf\', \'forbidden\']')
    t.equal(byKind.forbidden!.f.count, 7, 'byKind.forbidden.f.count is 7')
    t.equal(byKind.forbidden!.f.addresses, 1, 'byKind.forbidden.f.addresses is 1')
    t.match(String(byKind.forbidden!.f.top), /^127\.0\.0\.1 ×7$/, 'String(byKind.forbidden.f.top) matches /^127\\.0\\.0\\.1 ×7$/')
    t.equal(byKind.csrf!.f.count, 3, 'byKind.csrf.f.count is 3')
    t.equal(byKind.api_key!.f.count, 4, 'byKind.api_key.f.count is 4')
    t.equal(byKind.forbidden!.target_id, 'forbidden', 'byKind.forbidden.target_id is \'forbidden\'')
    t.equal(byKind.forbidden!.actor_user_id, null, 'byKind.forbidden.actor_user_id is null')
    // The next refusals open a new window: counted from zero.
    await b.get('/audit-log')
    await app.refusals.flush()
    const after = (await eventsOf(app, 'security.refusals')).filter((e) => e.f.kind === 'forbidden')
    t.same(after.map((e) => e.f.count), [7, 1], 'after.map((e) => e.f.count) is [7, 1]')
  })
}

t.test('sqlite: counted refusals are written when the app closes', async (t) => {
  const { app, dataDir, basic } = await signedIn(t, 'sqlite')
  const b = new Client(app)
  await b.signIn(basic.username)
  await b.get('/accounts')
  for (let i = 0; i < 2; i++) t.equal((await b.get('/users')).statusCode, 403, 'GET /users answers 403')
  await app.close()
  const db = new Database(path.join(dataDir, 'portal.sqlite'), { readonly: true })
  t.teardown(() => db.close())
  const rows = db.prepare("select fields from audit_events where action = 'security.refusals'").all() as Array<{ fields: string }>
  t.same(rows.map((r) => parseFields(r.fields).count), [2], 'rows.map((r) => parseFields(r.fields).count) is [2]')
})
