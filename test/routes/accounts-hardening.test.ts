// Issue 15, items 10, 14 and 20: the CSV export quotes every cell a reader could break, the
// API's numbers are numbers, a form changes only the fields it carries, and the Region
// filter lists only the regions of accounts the user can see.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { parse } from 'csv-parse/sync'
import { apiKeysFor, BASIC, ADMINISTRATOR, Client, assign, buildTestApp, createAccount, createUser, dialects } from '../helper.ts'
import type { User } from '../../src/db/schema.ts'

const keysFor = async (app: FastifyInstance, user: User): Promise<Record<string, string>> => (await apiKeysFor(app, user)).headers

async function accountByUuid(app: FastifyInstance, uuid: string) {
  return app.db.selectFrom('accounts').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow()
}

for (const dialect of dialects) {
  t.test(`${dialect}: CSV export quotes a cell holding a bare CR, and keeps the formula guard`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const admin = await createUser(app, { role: ADMINISTRATOR })
    await createAccount(app, { container_name: 'Carriage Co', notes: 'a\r=2+2', custom_name: 'b\n@SUM(1)', site_id: '=1+1' })
    const client = new Client(app)
    await client.signIn(admin.username)
    const res = await client.get('/accounts/export.csv')
    t.equal(res.statusCode, 200, 'GET /accounts/export.csv answers 200')
    t.match(res.body, ',"a\r=2+2",', 'the raw bytes quote the cell with the bare CR')
    t.match(res.body, ',"b\n@SUM(1)",', 'and the cell with a bare LF')
    // A reader that breaks records on a bare CR (outside quotes) sees one data row.
    const rows = parse(res.body, { bom: true, record_delimiter: ['\r\n', '\r', '\n'] }) as string[][]
    t.equal(rows.length, 2, 'the header and one row: no row starts with =2+2')
    const header = rows[0]!
    const row = rows[1]!
    t.equal(row[header.indexOf('Notes')], 'a\r=2+2', 'the CR in Notes survives the round trip')
    t.equal(row[header.indexOf('Custom Name')], 'b\n@SUM(1)', 'the LF in Custom Name survives the round trip')
    t.equal(row[header.indexOf('Site Identifier')], "'=1+1", 'a cell starting with = still gets its apostrophe')
  })

  t.test(`${dialect}: the API's licensed_assets is a number: true, null and [] are refused with a 400 naming the field`, async (t) => {
    const { app } = await buildTestApp(t, dialect, { API_RATE_LIMIT_PER_MINUTE: '100000' })
    const admin = await createUser(app, { role: ADMINISTRATOR })
    const keys = await keysFor(app, admin)
    const account = await createAccount(app, { container_name: 'Numbers Inc', licensed_assets: 7, licensed_assets_limit: 9 })
    for (const field of ['licensed_assets', 'licensed_assets_limit', 'license_expiration_date'] as const) {
      for (const bad of [true, false, [], {}, field === 'license_expiration_date' ? 'soon' : null]) {
        const label = `${field}: ${JSON.stringify(bad)}`
        const created = await app.inject({ method: 'POST', url: '/api/mssp/accounts', headers: keys, payload: { container_name: 'Bad Numbers', [field]: bad } })
        t.equal(created.statusCode, 400, `POST ${label}`)
        t.match(created.headers['content-type'], /^application\/json/, 'the refusal is JSON')
        t.match(created.json().message, field, `POST ${label}: the message names the field`)
        const patched = await app.inject({ method: 'PATCH', url: `/api/mssp/accounts/${account.uuid}`, headers: keys, payload: { [field]: bad } })
        t.equal(patched.statusCode, 400, `PATCH ${label}`)
        t.match(patched.json().message, field, `PATCH ${label}: the message names the field`)
      }
    }
    t.same((await app.db.selectFrom('accounts').select('container_name').execute()).map((a) => a.container_name), ['Numbers Inc'], 'nothing created')
    const after = await accountByUuid(app, account.uuid)
    t.same([after.licensed_assets, after.licensed_assets_limit], [7, 9], 'nothing changed')

    const json = await app.inject({ method: 'PATCH', url: `/api/mssp/accounts/${account.uuid}`, headers: keys, payload: { licensed_assets: 12 } })
    t.equal(json.statusCode, 200, `PATCH /api/mssp/accounts/${account.uuid} answers 200`)
    t.equal(json.json().licensed_assets, 12, 'a JSON number')
    const form = await app.inject({ method: 'PATCH', url: `/api/mssp/accounts/${account.uuid}`, headers: { ...keys, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'licensed_assets=250&licensed_assets_limit=' })
    t.equal(form.statusCode, 200, form.body)
    t.equal(form.json().licensed_assets, 250, 'digits from a form post')
    t.equal(form.json().licensed_assets_limit, 9, 'a blank form field changes nothing')
    const words = await app.inject({ method: 'POST', url: '/api/mssp/accounts', headers: { ...keys, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'container_name=Words&licensed_assets=ten' })
    t.equal(words.statusCode, 400, 'POST /api/mssp/accounts answers 400')
    t.match(words.json().message, 'licensed_assets', 'the refusal names licensed_assets')
  })

  t.test(`${dialect}: Add Account (page): digits are numbers, anything else a 422 with the field`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const admin = await createUser(app, { role: ADMINISTRATOR })
    const client = new Client(app)
    await client.signIn(admin.username)
    await client.get('/accounts/new')
    const bad = await client.post('/accounts/new', { container_name: 'Page Numbers', licensed_assets: 'true' })
    t.equal(bad.statusCode, 422, 'POST /accounts/new answers 422')
    t.match(bad.body, 'Enter a whole number, 0 or more.', 'the answer to POST /accounts/new shows \'Enter a whole number, 0 or more.\'')
    t.equal((await app.db.selectFrom('accounts').select('id').execute()).length, 0, 'nothing created')
    // As a browser posts the form: every field, the empty ones blank.
    const good = await client.post('/accounts/new', { container_name: 'Page Numbers', custom_name: '', site_id: '', region: '', licensed_assets: '40', licensed_assets_limit: '', license_expiration: '', instance_url: '', contact_email: '', domains: '', lms_customer_id: '', sso_username: '', notes: '' })
    t.equal(good.statusCode, 303, 'POST /accounts/new answers 303')
    const row = await app.db.selectFrom('accounts').selectAll().executeTakeFirstOrThrow()
    t.same([row.licensed_assets, row.licensed_assets_limit], [40, 0], 'the typed assets are saved, the blank limit as 0')
  })

  t.test(`${dialect}: Edit Account changes only the fields the form carries`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const admin = await createUser(app, { role: ADMINISTRATOR })
    const account = await createAccount(app, { container_name: 'Keep Notes', custom_name: 'Before', notes: 'Renewal handled by Sam' })
    const client = new Client(app)
    await client.signIn(admin.username)
    await client.get(`/accounts/${account.uuid}/edit`)

    const nameOnly = await client.post(`/accounts/${account.uuid}/edit`, { custom_name: 'After' })
    t.equal(nameOnly.statusCode, 303, `POST /accounts/${account.uuid}/edit answers 303`)
    let row = await accountByUuid(app, account.uuid)
    t.equal(row.custom_name, 'After', 'the custom name it carried changed')
    t.equal(row.notes, 'Renewal handled by Sam', 'a post without notes keeps the notes')

    await client.get(`/accounts/${account.uuid}/edit`)
    const plain = await app.inject({
      method: 'POST', url: `/accounts/${account.uuid}/edit`,
      headers: { ...client.headers(), 'content-type': 'text/plain', 'x-csrf-token': client.csrf },
      payload: 'custom_name=&notes=',
    })
    t.ok(plain.statusCode < 500, `a text/plain body answers ${plain.statusCode}`)
    const unchanged = await accountByUuid(app, account.uuid)
    t.same([unchanged.custom_name, unchanged.notes], ['After', 'Renewal handled by Sam'], 'a text/plain body blanks nothing')
    t.equal(Number(unchanged.modified_at), Number(row.modified_at), 'and changes nothing at all')

    await client.get(`/accounts/${account.uuid}/edit`)
    const cleared = await client.post(`/accounts/${account.uuid}/edit`, { custom_name: 'After', notes: '' })
    t.equal(cleared.statusCode, 303, `POST /accounts/${account.uuid}/edit answers 303`)
    t.equal((await accountByUuid(app, account.uuid)).notes, '', 'notes it carries, even empty, are saved')
  })

  t.test(`${dialect}: the Region filter lists only the regions of accounts the user can see`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const admin = await createUser(app, { role: ADMINISTRATOR })
    const basic = await createUser(app, { role: BASIC })
    const mine = await createAccount(app, { container_name: 'Mine', region: 'EMEA-North' })
    await createAccount(app, { container_name: 'Theirs', region: 'APAC-Secret' })
    await createAccount(app, { container_name: 'Others', region: 'LATAM-Hidden' })
    await assign(app, basic.id, [mine.id])
    const options = (body: string) => [...body.matchAll(/<option value="([^"]*)"[^>]*>/g)].map((m) => m[1]).filter((v) => /-/.test(v!))

    const user = new Client(app)
    await user.signIn(basic.username)
    const page = await user.get('/accounts')
    t.equal(page.statusCode, 200, 'GET /accounts answers 200')
    t.same(options(page.body), ['EMEA-North'], 'only the region of the assigned account')
    t.notMatch(page.body, 'APAC-Secret', 'the answer to GET /accounts does not show \'APAC-Secret\'')

    const administrator = new Client(app)
    await administrator.signIn(admin.username)
    t.same(options((await administrator.get('/accounts')).body), ['APAC-Secret', 'EMEA-North', 'LATAM-Hidden'], 'Administrators see every region')

    // An assignment withdrawn takes its region off the list at once.
    await assign(app, basic.id, [])
    t.same(options((await user.get('/accounts')).body), [], 'a user with no assignment sees no region')
  })
}
