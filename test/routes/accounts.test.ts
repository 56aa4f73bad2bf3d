import t from 'tap'
import { type Tap, Client, assign, buildTestApp, createAccount, createUser, dialects } from '../helper.ts'

for (const dialect of dialects) {
  t.test(`${dialect}: the Accounts page`, async (t) => {
    async function setup(t: Tap) {
      const { app } = await buildTestApp(t, dialect)
      const admin = await createUser(app, { role: 64 })
      const basic = await createUser(app, { role: 16 })
      const acme = await createAccount(app, { container_name: 'Acme Logistics', site_id: 'EU-100', region: 'EU', licensed_apps: 'vm,was', notes: 'Quarterly review in March', licensed_assets: 95, licensed_assets_limit: 100 })
      const bluefin = await createAccount(app, { container_name: 'Bluefin Capital', custom_name: 'Bluefin (managed)', site_id: 'US-200', region: 'US', licensed_apps: 'cs' })
      const cedar = await createAccount(app, { container_name: 'Cedar Health', site_id: 'US-300', region: 'US', license_expiration_date: Date.now() - 2 * 86_400_000 })
      await assign(app, basic.id, [acme.id])
      return { app, admin, basic, acme, bluefin, cedar }
    }

    t.test('Administrators see every account; other roles only their assigned ones', async (t) => {
      const { app, admin, basic } = await setup(t)
      const a = new Client(app)
      await a.signIn(admin.username)
      const all = await a.get('/accounts')
      for (const name of ['Acme Logistics', 'Bluefin Capital', 'Cedar Health']) t.match(all.body, name, `the answer to GET /accounts shows ${name}`)
      t.match(all.body, '3 accounts', 'the answer to GET /accounts shows \'3 accounts\'')
      t.match(all.body, 'Vulnerability Management', 'the answer to GET /accounts shows \'Vulnerability Management\'')
      t.match(all.body, 'Web Application Scanning', 'the answer to GET /accounts shows \'Web Application Scanning\'')
      t.match(all.body, '95 / 100', 'the answer to GET /accounts shows \'95 / 100\'')
      const b = new Client(app)
      await b.signIn(basic.username)
      const mine = await b.get('/accounts')
      t.match(mine.body, 'Acme Logistics', 'the answer to GET /accounts shows \'Acme Logistics\'')
      t.notMatch(mine.body, 'Bluefin', 'the answer to GET /accounts does not show \'Bluefin\'')
      t.notMatch(mine.body, 'Cedar', 'the answer to GET /accounts does not show \'Cedar\'')
      t.notMatch(mine.body, 'aria-label="Edit', 'no edit action for other roles')
      t.notMatch(mine.body, 'Assign logo', 'no Selected bar for other roles')
      const searched = await b.get('/accounts?q=bluefin', { 'hx-request': 'true' })
      t.notMatch(searched.body, 'Bluefin', 'a search does not reach unassigned accounts')
      t.match(searched.body, 'No accounts match your search', 'the answer to GET /accounts?q=bluefin shows \'No accounts match your search\'')
    })

    t.test('a user with no accounts sees a clear empty state', async (t) => {
      const { app } = await setup(t)
      const lonely = await createUser(app, { role: 32 })
      const c = new Client(app)
      await c.signIn(lonely.username)
      t.match((await c.get('/accounts')).body, 'No accounts are assigned to you yet.', 'the answer to GET /accounts shows \'No accounts are assigned to you yet.\'')
    })

    t.test('Search matches customer name, custom name, licensed apps, site identifier and notes, case-insensitively', async (t) => {
      const { app, admin } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      const cases: Array<[string, string[]]> = [
        ['acme', ['Acme Logistics']],
        ['ACME log', ['Acme Logistics']],
        ['managed', ['Bluefin Capital']],
        ['container', ['Bluefin Capital']],
        ['web application', ['Acme Logistics']],
        ['us-3', ['Cedar Health']],
        ['quarterly', ['Acme Logistics']],
        ['e', ['Acme Logistics', 'Bluefin Capital', 'Cedar Health']],
        ['zzz', []],
        ['100%', []],
        ['"', []],
      ]
      for (const [q, expected] of cases) {
        const res = await c.get(`/accounts?q=${encodeURIComponent(q)}`, { 'hx-request': 'true' })
        t.equal(res.statusCode, 200, q)
        for (const name of ['Acme Logistics', 'Bluefin Capital', 'Cedar Health']) {
          t.equal(res.body.includes(`<td>${name}</td>`), expected.includes(name), `${q} → ${name}`)
        }
      }
    })

    t.test('one URL serves the page or the fragment, and the URL keeps the search', async (t) => {
      const { app, admin } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      const page = await c.get('/accounts?q=acme')
      t.match(page.body, '<html', 'the answer to GET /accounts?q=acme shows \'<html\'')
      t.match(page.body, 'value="acme"', 'the answer to GET /accounts?q=acme shows \'value="acme"\'')
      t.match(page.headers.vary, /HX-Request/, 'page.headers.vary matches /HX-Request/')
      const fragment = await c.get('/accounts?q=acme', { 'hx-request': 'true' })
      t.notMatch(fragment.body, '<html', 'the answer to GET /accounts?q=acme does not show \'<html\'')
      t.match(fragment.body, 'id="accounts-results"', 'the answer to GET /accounts?q=acme shows \'id="accounts-results"\'')
      t.match(fragment.body, 'hx-get="/accounts?q=acme"', 'the fragment refreshes with the same search')
    })

    t.test('filters, sorting and paging', async (t) => {
      const { app, admin } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      const cs = await c.get('/accounts?app=cs', { 'hx-request': 'true' })
      t.match(cs.body, 'Bluefin Capital', 'the answer to GET /accounts?app=cs shows \'Bluefin Capital\'')
      t.notMatch(cs.body, 'Acme Logistics', 'the answer to GET /accounts?app=cs does not show \'Acme Logistics\'')
      const eu = await c.get('/accounts?region=EU', { 'hx-request': 'true' })
      t.match(eu.body, 'Acme Logistics', 'the answer to GET /accounts?region=EU shows \'Acme Logistics\'')
      t.notMatch(eu.body, 'Cedar Health', 'the answer to GET /accounts?region=EU does not show \'Cedar Health\'')
      const expired = await c.get('/accounts?expires=expired', { 'hx-request': 'true' })
      t.match(expired.body, 'Cedar Health', 'the answer to GET /accounts?expires=expired shows \'Cedar Health\'')
      t.match(expired.body, 'Expired', 'the answer to GET /accounts?expires=expired shows \'Expired\'')
      t.notMatch(expired.body, 'Acme Logistics', 'the answer to GET /accounts?expires=expired does not show \'Acme Logistics\'')
      const desc = await c.get('/accounts?dir=desc', { 'hx-request': 'true' })
      t.ok(desc.body.indexOf('Cedar Health') < desc.body.indexOf('Acme Logistics'), 'descending by name')
      const bogus = await c.get('/accounts?sort=password_hash&page=-4&dir=sideways')
      t.equal(bogus.statusCode, 200, 'bad paging and sorting values fall back to defaults')
      for (let i = 0; i < 55; i++) await createAccount(app, { container_name: `Zulu ${String(i).padStart(2, '0')}` })
      const first = await c.get('/accounts', { 'hx-request': 'true' })
      t.match(first.body, 'Page 1 of 2', 'the answer to GET /accounts shows \'Page 1 of 2\'')
      t.notMatch(first.body, 'Zulu 54', 'the answer to GET /accounts does not show \'Zulu 54\'')
      const second = await c.get('/accounts?page=2', { 'hx-request': 'true' })
      t.match(second.body, 'Zulu 54', 'the answer to GET /accounts?page=2 shows \'Zulu 54\'')
      t.match(second.body, 'Page 2 of 2', 'the answer to GET /accounts?page=2 shows \'Page 2 of 2\'')
    })

    t.test('Account Details for Support Ticket: Administrators only, 404 for unknown', async (t) => {
      const { app, admin, basic, acme } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      const res = await c.get(`/accounts/${acme.uuid}/details`, { 'hx-request': 'true' })
      t.equal(res.statusCode, 200, `GET /accounts/${acme.uuid}/details answers 200`)
      t.match(res.body, 'Account Details for Support Ticket', `the answer to GET /accounts/${acme.uuid}/details shows 'Account Details for Support Ticket'`)
      t.match(res.body, acme.uuid, `the answer to GET /accounts/${acme.uuid}/details shows ${acme.uuid}`)
      t.match(res.body, 'Assigned Users: 1', `the answer to GET /accounts/${acme.uuid}/details shows 'Assigned Users: 1'`)
      t.match(res.body, /<textarea[^>]*readonly[^>]*>Customer Name: Acme Logistics/, `the answer to GET /accounts/${acme.uuid}/details shows /<textarea[^>]*readonly[^>]*>Customer Name: Acme Logistics/`)
      t.match(res.body, 'data-copy-target="account-details-text"', `the answer to GET /accounts/${acme.uuid}/details shows 'data-copy-target="account-details-text"'`)
      t.equal((await c.get('/accounts/00000000-0000-4000-8000-000000000000/details')).statusCode, 404, 'GET /accounts/00000000-0000-4000-8000-000000000000/details answers 404')
      t.equal((await c.get('/accounts/not-a-uuid/details')).statusCode, 404, 'GET /accounts/not-a-uuid/details answers 404')
      const b = new Client(app)
      await b.signIn(basic.username)
      t.equal((await b.get(`/accounts/${acme.uuid}/details`)).statusCode, 403, `GET /accounts/${acme.uuid}/details answers 403`)
    })

    t.test('Edit Account: Custom Name and Notes, history, validation, htmx and plain posts', async (t) => {
      const { app, admin, acme, basic } = await setup(t)
      const c = new Client(app)
      await c.signIn(admin.username)
      const plane = await c.get(`/accounts/${acme.uuid}/edit`, { 'hx-request': 'true' })
      for (const label of ['Edit Account', 'Custom Name', 'Notes', 'Submit', 'Custom Name Update History']) t.match(plane.body, label, `the Edit Account plane shows ${label}`)
      let res = await c.post(`/accounts/${acme.uuid}/edit`, { custom_name: 'Acme EU', notes: 'Call Jana first' })
      t.equal(res.statusCode, 303, `POST /accounts/${acme.uuid}/edit answers 303`)
      const page = await c.get('/accounts')
      t.match(page.body, 'Account changes saved successfully.', 'the answer to GET /accounts shows \'Account changes saved successfully.\'')
      t.match(page.body, 'Acme EU', 'the answer to GET /accounts shows \'Acme EU\'')
      res = await c.post(`/accounts/${acme.uuid}/edit`, { custom_name: 'Acme Europe', notes: 'Call Jana first' }, { 'hx-request': 'true' })
      t.equal(res.statusCode, 200, `POST /accounts/${acme.uuid}/edit answers 200`)
      t.equal(res.headers['hx-trigger'], 'accounts-changed', 'res.headers[\'hx-trigger\'] is \'accounts-changed\'')
      t.match(res.body, 'Account changes saved successfully.', `the answer to POST /accounts/${acme.uuid}/edit shows 'Account changes saved successfully.'`)
      const history = await app.db.selectFrom('account_name_history').selectAll().orderBy('created_at').execute()
      t.same(history.map((h) => [h.old_value, h.new_value, h.user_name]), [[null, 'Acme EU', admin.username], ['Acme EU', 'Acme Europe', admin.username]], 'each custom name change is in the history with the user')
      t.match(res.body, /<td>Acme EU<\/td><td>Acme Europe<\/td>/, `the answer to POST /accounts/${acme.uuid}/edit shows /<td>Acme EU<\\/td><td>Acme Europe<\\/td>/`)
      // notes only: no history row
      await c.post(`/accounts/${acme.uuid}/edit`, { custom_name: 'Acme Europe', notes: 'changed' })
      t.equal((await app.db.selectFrom('account_name_history').selectAll().execute()).length, 2, 'the account_name_history rows\' count is 2')
      // invalid: nothing half-saved
      res = await c.post(`/accounts/${acme.uuid}/edit`, { custom_name: 'x'.repeat(201), notes: 'should not be saved' }, { 'hx-request': 'true' })
      t.equal(res.statusCode, 422, `POST /accounts/${acme.uuid}/edit answers 422`)
      t.match(res.body, 'at most 200 characters', `the answer to POST /accounts/${acme.uuid}/edit shows 'at most 200 characters'`)
      const row = await app.db.selectFrom('accounts').selectAll().where('id', '=', acme.id).executeTakeFirstOrThrow()
      t.equal(row.notes, 'changed', 'row.notes is \'changed\'')
      t.equal(row.custom_name, 'Acme Europe', 'row.custom_name is \'Acme Europe\'')
      t.match((await c.get('/accounts?q=europe', { 'hx-request': 'true' })).body, 'Acme Logistics', 'the search index follows the edit')
      const b = new Client(app)
      await b.signIn(basic.username)
      await b.get('/accounts')
      t.equal((await b.post(`/accounts/${acme.uuid}/edit`, { custom_name: 'hacked' })).statusCode, 403, `POST /accounts/${acme.uuid}/edit answers 403`)
    })

    t.test('Assign Logo to Accounts and (No Logo), in bulk', async (t) => {
      const { app, admin, acme, bluefin, cedar } = await setup(t)
      const now = Date.now()
      const logo = await app.db.insertInto('logos').values({ uuid: crypto.randomUUID(), name: 'Blue Wave', filename: 'wave.png', png: Buffer.from([1]), width: 1, height: 1, created_by: null, created_at: now, updated_at: now }).returningAll().executeTakeFirstOrThrow()
      const c = new Client(app)
      await c.signIn(admin.username)
      const page = await c.get('/accounts')
      t.match(page.body, 'aria-label="Assign logo"', 'the answer to GET /accounts shows \'aria-label="Assign logo"\'')
      t.match(page.body, 'aria-label="Selected"', 'the answer to GET /accounts shows \'aria-label="Selected"\'')
      const plane = await c.get(`/accounts/assign-logo?account=${acme.uuid}&account=${bluefin.uuid}`, { 'hx-request': 'true' })
      for (const label of ['Assign Logo to Accounts', 'Logo', '(No Logo)', 'Blue Wave', 'Save', '2 accounts selected']) t.match(plane.body, label, `the Assign Logo plane shows ${label}`)
      const body = new URLSearchParams([['_csrf', c.csrf], ['account', acme.uuid], ['account', bluefin.uuid], ['logo', logo.uuid]])
      let res = await app.inject({ method: 'POST', url: '/accounts/assign-logo', payload: body.toString(), headers: { ...c.headers(), 'content-type': 'application/x-www-form-urlencoded' } })
      t.equal(res.statusCode, 303, 'POST /accounts/assign-logo answers 303')
      t.match((await c.get('/accounts')).body, 'Logo assigned to all selected accounts', 'the answer to GET /accounts shows \'Logo assigned to all selected accounts\'')
      const rows = await app.db.selectFrom('accounts').select(['id', 'logo_id']).orderBy('id').execute()
      t.same(rows.map((r) => r.logo_id), [logo.id, logo.id, null], 'the two selected accounts got the logo, the third not')
      // (No Logo) removes it, with htmx
      res = await c.post('/accounts/assign-logo', { account: acme.uuid, logo: '' }, { 'hx-request': 'true' })
      t.equal(res.statusCode, 200, 'POST /accounts/assign-logo answers 200')
      t.equal(res.headers['hx-trigger'], 'accounts-changed', 'res.headers[\'hx-trigger\'] is \'accounts-changed\'')
      t.match(res.body, 'Logo assigned to all selected accounts', 'the answer to POST /accounts/assign-logo shows \'Logo assigned to all selected accounts\'')
      t.equal((await app.db.selectFrom('accounts').select('logo_id').where('id', '=', acme.id).executeTakeFirstOrThrow()).logo_id, null, '(No Logo) removed the logo')
      // nothing selected, or an unknown logo: 422 and nothing changes
      res = await c.post('/accounts/assign-logo', { logo: logo.uuid })
      t.equal(res.statusCode, 422, 'nothing selected is refused')
      res = await c.post('/accounts/assign-logo', { account: cedar.uuid, logo: crypto.randomUUID() })
      t.equal(res.statusCode, 422, 'an unknown logo is refused')
      t.equal((await app.db.selectFrom('accounts').select('logo_id').where('id', '=', cedar.id).executeTakeFirstOrThrow()).logo_id, null, 'a refused assignment changes no logo')
      // an unknown account among many: all-or-nothing
      res = await c.post('/accounts/assign-logo', { account: cedar.uuid, logo: logo.uuid, _x: '' }, {})
      t.equal(res.statusCode, 303, 'POST /accounts/assign-logo answers 303')
      const many = new URLSearchParams([['_csrf', c.csrf], ['account', acme.uuid], ['account', crypto.randomUUID()], ['logo', logo.uuid]])
      res = await app.inject({ method: 'POST', url: '/accounts/assign-logo', payload: many.toString(), headers: { ...c.headers(), 'content-type': 'application/x-www-form-urlencoded' } })
      t.equal(res.statusCode, 404, 'an unknown account among many answers 404')
      t.equal((await app.db.selectFrom('accounts').select('logo_id').where('id', '=', acme.id).executeTakeFirstOrThrow()).logo_id, null, 'nothing half-done')
    })

    t.test('"select all N matching" assigns a logo to every account of the search, beyond the page', async (t) => {
      const { app, admin, acme } = await setup(t)
      const now = Date.now()
      const logo = await app.db.insertInto('logos').values({ uuid: crypto.randomUUID(), name: 'All', filename: 'a.png', png: Buffer.from([1]), width: 1, height: 1, created_by: null, created_at: now, updated_at: now }).returningAll().executeTakeFirstOrThrow()
      for (let i = 0; i < 60; i++) await createAccount(app, { container_name: `Matching Zebra ${i}` })
      const c = new Client(app)
      await c.signIn(admin.username)
      const page = await c.get('/accounts?q=zebra')
      t.match(page.body, 'Select all 60 matching', 'the answer to GET /accounts?q=zebra shows \'Select all 60 matching\'')
      t.match(page.body, 'Assign a logo to all 60', 'the answer to GET /accounts?q=zebra shows \'Assign a logo to all 60\'')
      const plane = await c.get('/accounts/assign-logo?all=1&q=zebra', { 'hx-request': 'true' })
      t.match(plane.body, 'All 60 accounts matching your search selected.', 'the answer to GET /accounts/assign-logo?all=1&q=zebra shows \'All 60 accounts matching your search selected.\'')
      const res = await c.post('/accounts/assign-logo', { all: '1', q: 'zebra', logo: logo.uuid })
      t.equal(res.statusCode, 303, 'POST /accounts/assign-logo answers 303')
      const n = await app.db.selectFrom('accounts').select((eb) => eb.fn.countAll<number>().as('n')).where('logo_id', '=', logo.id).executeTakeFirstOrThrow()
      t.equal(Number(n.n), 60, 'all 60 matching accounts got the logo')
      t.equal((await app.db.selectFrom('accounts').select('logo_id').where('id', '=', acme.id).executeTakeFirstOrThrow()).logo_id, null, 'accounts outside the search keep theirs')
      const none = await c.post('/accounts/assign-logo', { all: '1', q: 'no-such-account', logo: logo.uuid })
      t.equal(none.statusCode, 422, 'POST /accounts/assign-logo answers 422')
    })

    t.test('bulk assignment of hundreds of accounts in one request', async (t) => {
      const { app, admin } = await setup(t)
      const now = Date.now()
      const logo = await app.db.insertInto('logos').values({ uuid: crypto.randomUUID(), name: 'Many', filename: 'm.png', png: Buffer.from([1]), width: 1, height: 1, created_by: null, created_at: now, updated_at: now }).returningAll().executeTakeFirstOrThrow()
      const uuids: string[] = []
      for (let i = 0; i < 600; i++) uuids.push((await createAccount(app)).uuid)
      const c = new Client(app)
      await c.signIn(admin.username)
      await c.get('/accounts')
      const body = new URLSearchParams([['_csrf', c.csrf], ...uuids.map((u) => ['account', u] as [string, string]), ['logo', logo.uuid]])
      const res = await app.inject({ method: 'POST', url: '/accounts/assign-logo', payload: body.toString(), headers: { ...c.headers(), 'content-type': 'application/x-www-form-urlencoded' } })
      t.equal(res.statusCode, 303, 'POST /accounts/assign-logo answers 303')
      const n = await app.db.selectFrom('accounts').select((eb) => eb.fn.countAll<number>().as('n')).where('logo_id', '=', logo.id).executeTakeFirstOrThrow()
      t.equal(Number(n.n), 600, 'all 600 posted accounts got the logo')
    })
  })
}
