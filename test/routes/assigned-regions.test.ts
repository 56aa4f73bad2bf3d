// What the Accounts page reads of a user's assignments from the tables kept beside them
// (migration 0013): how many accounts they have and the regions of those accounts, right after
// every kind of change (an assignment, a region changed, an account or a user deleted).
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { Client, assign, buildTestApp, createAccount, createUser, dialects } from '../helper.ts'

/** The Region filter's choices on the page. */
async function regionChoices(client: Client): Promise<string[]> {
  const body = (await client.get('/accounts')).body
  return [...body.matchAll(/<option value="([^"]*)"[^>]*>/g)].map((m) => m[1]!).filter((v) => /-/.test(v))
}

async function kept(app: FastifyInstance, userId: number) {
  const regions = await app.db.selectFrom('assigned_regions').select(['region', 'accounts']).where('user_id', '=', userId).orderBy('region').execute()
  const total = await app.db.selectFrom('assigned_totals').select('accounts').where('user_id', '=', userId).executeTakeFirst()
  return { regions: regions.map((r) => `${r.region}=${r.accounts}`), total: total?.accounts ?? 0 }
}

for (const dialect of dialects) {
  t.test(`${dialect}: a user's count and regions follow every change to their accounts`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const analyst = await createUser(app, { role: 24 })
    const other = await createUser(app, { role: 24 })
    const a = await createAccount(app, { region: 'EU-west' })
    const b = await createAccount(app, { region: 'EU-west' })
    const c = await createAccount(app, { region: 'US-east' })
    const d = await createAccount(app, { region: null })
    await assign(app, analyst.id, [a.id, b.id, c.id, d.id])
    await assign(app, other.id, [b.id])
    const client = new Client(app)
    await client.signIn(analyst.username)

    t.same(await kept(app, analyst.id), { regions: ['EU-west=2', 'US-east=1'], total: 4 }, 'assigned: two regions, four accounts (one without a region)')
    t.same(await regionChoices(client), ['EU-west', 'US-east'], 'the Region filter lists both')
    t.match((await client.get('/accounts', { 'hx-request': 'true' })).body, '4 accounts', 'the page counts all four')

    await assign(app, analyst.id, [b.id, c.id, d.id])
    t.same(await kept(app, analyst.id), { regions: ['EU-west=1', 'US-east=1'], total: 3 }, 'one EU account withdrawn: one left there')

    await app.db.updateTable('accounts').set({ region: 'UK-north' }).where('id', '=', b.id).execute()
    t.same(await kept(app, analyst.id), { regions: ['UK-north=1', 'US-east=1'], total: 3 }, 'a region changed moves the account')
    t.same(await kept(app, other.id), { regions: ['UK-north=1'], total: 1 }, 'for every user it is assigned to')

    await app.db.updateTable('accounts').set({ region: 'AP-south' }).where('id', '=', d.id).execute()
    t.same((await kept(app, analyst.id)).regions, ['AP-south=1', 'UK-north=1', 'US-east=1'], 'an account given a region adds it')

    await app.db.deleteFrom('accounts').where('id', '=', b.id).execute()
    t.same(await kept(app, analyst.id), { regions: ['AP-south=1', 'US-east=1'], total: 2 }, 'a deleted account is withdrawn')
    t.same(await kept(app, other.id), { regions: [], total: 0 }, 'from everyone')
    t.same(await regionChoices(client), ['AP-south', 'US-east'], 'the Region filter follows')
    t.match((await client.get('/accounts', { 'hx-request': 'true' })).body, '2 accounts', 'and so does the count')

    await app.db.updateTable('accounts').set({ region: null }).where('id', '=', c.id).execute()
    t.same(await kept(app, analyst.id), { regions: ['AP-south=1'], total: 2 }, 'a region removed takes it off the list, not the account off the count')

    await assign(app, other.id, [c.id])
    await app.db.deleteFrom('users').where('id', '=', other.id).execute()
    t.same(await kept(app, other.id), { regions: [], total: 0 }, 'a deleted user keeps nothing')
  })
}
