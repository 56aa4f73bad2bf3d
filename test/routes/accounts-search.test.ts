// The Search box on many accounts: every word counts (short ones too), broad searches count
// up to 1,000 ("1,000+") and still page in sort order, whichever way the page is found.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { Client, assign, buildTestApp, createAccount, createUser, dialects } from '../helper.ts'
import { searchTextOf } from '../../src/areas/accounts/repository.ts'
import { uuid } from '../../src/lib/tokens.ts'

/** Many accounts at once (multi-row inserts), named `${prefix} 00000`, `${prefix} 00001`, ... */
async function insertMany(app: FastifyInstance, prefix: string, count: number, notes = ''): Promise<void> {
  const now = Date.now()
  for (let start = 0; start < count; start += 200) {
    const rows = []
    for (let i = start; i < Math.min(count, start + 200); i++) {
      const a = { container_name: `${prefix} ${String(i).padStart(5, '0')}`, custom_name: null, site_id: `BULK-${prefix}-${i}`, licensed_apps: 'vm', notes }
      rows.push({ ...a, uuid: uuid(), region: 'US', licensed_assets: 1, licensed_assets_limit: 10, license_utilization: 10, domains: '[]', search_text: searchTextOf(a), created_at: now, modified_at: now })
    }
    await app.db.insertInto('accounts').values(rows).execute()
  }
}

/** The customer names of a results fragment, in table order (the first cell after the check box). */
function names(body: string): string[] {
  return [...body.matchAll(/<tr>\s*(?:<td class="select-col">.*?<\/td>)?\s*<td>([^<]+)<\/td>/g)].map((m) => m[1]!)
}

for (const dialect of dialects) {
  t.test(`${dialect}: every word of the search counts, short words too`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const admin = await createUser(app, { role: 64 })
    await createAccount(app, { container_name: 'Harbor Freight', notes: 'ticket 170' })
    await createAccount(app, { container_name: 'Harbor Dental', notes: 'ticket 99' })
    const c = new Client(app)
    await c.signIn(admin.username)
    const cases: Array<[string, string[]]> = [
      ['ticket 17', ['Harbor Freight']],
      ['harbor 99', ['Harbor Dental']],
      ['99 harbor', ['Harbor Dental']],
      ['harbor', ['Harbor Dental', 'Harbor Freight']],
      ['harbor 5', []],
    ]
    for (const [q, expected] of cases) {
      const res = await c.get(`/accounts?q=${encodeURIComponent(q)}`, { 'hx-request': 'true' })
      t.same(names(res.body), expected, q)
    }
  })

  t.test(`${dialect}: a broad search takes % and _ literally`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const admin = await createUser(app, { role: 64 })
    // As LIKE wildcards, "zebra_crossing" would match the Aardvarks' "zebra crossing" first.
    await insertMany(app, 'Aardvark', 1100, 'zebra crossing')
    await insertMany(app, 'Zulu', 1050, 'zebra_crossing 100%')
    const c = new Client(app)
    await c.signIn(admin.username)
    for (const q of ['zebra_crossing', '100%', 'zebra_crossing 100%']) {
      const res = await c.get(`/accounts?q=${encodeURIComponent(q)}`, { 'hx-request': 'true' })
      t.match(res.body, '1,000+ accounts matching', q)
      t.same(names(res.body).slice(0, 2), ['Zulu 00000', 'Zulu 00001'], q)
    }
    const both = await c.get('/accounts?q=zebra%20crossing', { 'hx-request': 'true' })
    t.same(names(both.body).slice(0, 1), ['Aardvark 00000'], 'two plain words match both')
  })

  t.test(`${dialect}: a broad search says 1,000+ and pages through the matches in order`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const admin = await createUser(app, { role: 64 })
    // Aardvarks sort first and do not match "common": the first rows in name order hold none.
    await insertMany(app, 'Aardvark', 1100, 'zebra crossing')
    await insertMany(app, 'Common', 1060)
    await insertMany(app, 'Middle', 120)
    const c = new Client(app)
    await c.signIn(admin.username)

    const all = await c.get('/accounts', { 'hx-request': 'true' })
    t.match(all.body, '2,280 accounts', 'the whole table keeps its exact count')
    t.match(all.body, 'Page 1 of 46</span>', 'the answer to GET /accounts shows \'Page 1 of 46</span>\'')

    const common = await c.get('/accounts?q=common', { 'hx-request': 'true' })
    t.match(common.body, '1,000+ accounts matching “common”', 'the answer to GET /accounts?q=common shows \'1,000+ accounts matching “common”\'')
    t.match(common.body, 'Page 1 of 20+', 'the answer to GET /accounts?q=common shows \'Page 1 of 20+\'')
    t.match(common.body, 'Select all matching', 'the answer to GET /accounts?q=common shows \'Select all matching\'')
    t.match(common.body, 'Assign a logo to all matching', 'the answer to GET /accounts?q=common shows \'Assign a logo to all matching\'')
    const first = names(common.body)
    t.equal(first.length, 50, 'a full first page of 50')
    t.equal(first[0], 'Common 00000', 'the first match in name order, past the non-matching ones')
    t.equal(first[49], 'Common 00049', 'the first page ends at the 50th match')
    t.match(common.body, 'href="/accounts?q=common&amp;page=2"', 'a Next link although the last page is not counted')
    const second = names((await c.get('/accounts?q=common&page=2', { 'hx-request': 'true' })).body)
    t.equal(second[0], 'Common 00050', 'page 2 starts at the 51st match')
    const desc = names((await c.get('/accounts?q=common&dir=desc', { 'hx-request': 'true' })).body)
    t.equal(desc[0], 'Common 01059', 'descending')

    // A word in every row: the first page comes straight from the start of the sort order.
    const bulk = await c.get('/accounts?q=bulk', { 'hx-request': 'true' })
    t.match(bulk.body, '1,000+ accounts matching “bulk”', 'the answer to GET /accounts?q=bulk shows \'1,000+ accounts matching “bulk”\'')
    t.same(names(bulk.body).slice(0, 2), ['Aardvark 00000', 'Aardvark 00001'], 'the first page starts at the start of the sort order')
    const bulk3 = names((await c.get('/accounts?q=bulk&page=3', { 'hx-request': 'true' })).body)
    t.equal(bulk3[0], 'Aardvark 00100', 'page 3 starts at the 101st row')
    const bulkByName = names((await c.get('/accounts?q=bulk&dir=desc', { 'hx-request': 'true' })).body)
    t.equal(bulkByName[0], 'Middle 00119', 'descending starts from the end of the name order')

    // Under the cap the count is exact, and a short word narrows a broad one.
    const middle = await c.get('/accounts?q=middle', { 'hx-request': 'true' })
    t.match(middle.body, '120 accounts matching “middle”', 'the answer to GET /accounts?q=middle shows \'120 accounts matching “middle”\'')
    t.match(middle.body, 'Page 1 of 3</span>', 'the answer to GET /accounts?q=middle shows \'Page 1 of 3</span>\'')
    t.same(names((await c.get('/accounts?q=middle&page=3', { 'hx-request': 'true' })).body).slice(0, 1), ['Middle 00100'], 'page 3 of middle starts at the 101st match')
    t.match((await c.get('/accounts?q=middle&page=99', { 'hx-request': 'true' })).body, 'Page 3 of 3</span>', 'a page past the end shows the last')
    const narrowed = await c.get('/accounts?q=common%2001059', { 'hx-request': 'true' })
    t.same(names(narrowed.body), ['Common 01059'], 'a second word narrows to one account')
    const short = await c.get('/accounts?q=aardvark%2020', { 'hx-request': 'true' })
    t.ok(names(short.body).length > 0 && names(short.body).every((n) => n.includes('20')), 'only names with "20"')

    // Assigning a logo to every match still counts them all.
    const plane = await c.get('/accounts/assign-logo?all=1&q=common', { 'hx-request': 'true' })
    t.match(plane.body, '1,060', 'the answer to GET /accounts/assign-logo?all=1&q=common shows \'1,060\'')
  })

  t.test(`${dialect}: users see only their assigned accounts in a search, however many they have`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    await insertMany(app, 'Aardvark', 1100)
    await insertMany(app, 'Common', 1060)
    await insertMany(app, 'Middle', 120)
    const idsOf = async (prefix: string, from: number, to: number) =>
      (await app.db.selectFrom('accounts').select('id').where('container_name', '>=', `${prefix} ${String(from).padStart(5, '0')}`).where('container_name', '<=', `${prefix} ${String(to).padStart(5, '0')}`).execute()).map((r) => r.id)
    // Many (more than the 2,000 read row by row): every Aardvark and Common 00000-01009.
    const many = await createUser(app, { role: 24 })
    await assign(app, many.id, [...(await idsOf('Aardvark', 0, 1099)), ...(await idsOf('Common', 0, 1009))])
    const few = await createUser(app, { role: 16 })
    await assign(app, few.id, [...(await idsOf('Middle', 1, 1)), ...(await idsOf('Common', 1050, 1050)), ...(await idsOf('Aardvark', 7, 7))])

    const m = new Client(app)
    await m.signIn(many.username)
    t.match((await m.get('/accounts', { 'hx-request': 'true' })).body, '2,110 accounts', 'an exact count of their own accounts')
    const common = await m.get('/accounts?q=common', { 'hx-request': 'true' })
    t.match(common.body, '1,000+ accounts matching “common”', 'the answer to GET /accounts?q=common shows \'1,000+ accounts matching “common”\'')
    t.equal(names(common.body)[0], 'Common 00000', 'a limited user\'s first match in name order')
    t.equal(names((await m.get('/accounts?q=common&dir=desc', { 'hx-request': 'true' })).body)[0], 'Common 01009', 'not the unassigned Common 01059')
    t.same(names((await m.get('/accounts?q=common%2001009', { 'hx-request': 'true' })).body), ['Common 01009'], 'a limited user finds an assigned account by two words')
    for (const q of ['middle', 'common 01059']) {
      const res = await m.get(`/accounts?q=${encodeURIComponent(q)}`, { 'hx-request': 'true' })
      t.same(names(res.body), [], `${q}: nothing unassigned`)
      t.match(res.body, 'No accounts match your search', `the answer to GET /accounts?q=${encodeURIComponent(q)} shows 'No accounts match your search'`)
    }
    t.same(names((await m.get('/accounts?q=common%200105', { 'hx-request': 'true' })).body), ['Common 00105'], 'not Common 01050-01059')
    const csv = await m.get('/accounts/export.csv?q=common%20010')
    t.notMatch(csv.body, 'Common 0105', 'the export holds only assigned accounts')
    t.match(csv.body, 'Common 01009', 'the export holds the assigned match')

    const f = new Client(app)
    await f.signIn(few.username)
    t.match((await f.get('/accounts', { 'hx-request': 'true' })).body, '3 accounts', 'the answer to GET /accounts shows \'3 accounts\'')
    const fewCommon = await f.get('/accounts?q=common', { 'hx-request': 'true' })
    t.match(fewCommon.body, '1 account matching “common”', 'the answer to GET /accounts?q=common shows \'1 account matching “common”\'')
    t.same(names(fewCommon.body), ['Common 01050'], 'the only assigned match is listed')
  })
}

