import t from 'tap'
import { Client, buildTestApp, createAccount, createUser, dialects } from '../helper.ts'

for (const dialect of dialects) {
  t.test(`${dialect}: saved searches and Add Account`, async (t) => {
    t.test('a user saves the current search under a name, reopens and deletes it; it is theirs alone', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const owner = await createUser(app, { role: 32 })
      const other = await createUser(app, { role: 32 })
      const c = new Client(app)
      await c.signIn(owner.username)
      const page = await c.get('/accounts?q=acme&region=EU&password=x')
      t.match(page.body, 'No saved searches yet.', 'the answer to GET /accounts?q=acme&region=EU&password=x shows \'No saved searches yet.\'')
      t.match(page.body, 'name="query" value="q=acme&amp;region=EU"', 'only the page parameters are kept')
      let res = await c.post('/accounts/saved-searches', { name: 'EU Acme', query: 'q=acme&region=EU' })
      t.equal(res.statusCode, 303, 'POST /accounts/saved-searches answers 303')
      t.equal(res.headers.location, '/accounts?q=acme&region=EU', 'POST /accounts/saved-searches redirects to \'/accounts?q=acme&region=EU\'')
      const after = await c.get('/accounts')
      t.match(after.body, 'Search saved.', 'the answer to GET /accounts shows \'Search saved.\'')
      t.match(after.body, '<a href="/accounts?q=acme&amp;region=EU">EU Acme</a>', 'the answer to GET /accounts shows \'<a href="/accounts?q=acme&amp;region=EU">EU Acme</a>\'')
      res = await c.post('/accounts/saved-searches', { name: 'EU Acme', query: 'q=other' })
      t.equal(res.statusCode, 422, 'POST /accounts/saved-searches answers 422')
      t.match(res.body, 'already have a saved search named', 'the answer to POST /accounts/saved-searches shows \'already have a saved search named\'')
      res = await c.post('/accounts/saved-searches', { name: '  ', query: '' })
      t.equal(res.statusCode, 422, 'POST /accounts/saved-searches answers 422')
      t.match(res.body, 'Name the search.', 'the answer to POST /accounts/saved-searches shows \'Name the search.\'')
      const rows = await app.db.selectFrom('saved_searches').selectAll().execute()
      t.equal(rows.length, 1, 'one saved search is stored')
      const o = new Client(app)
      await o.signIn(other.username)
      const theirs = await o.get('/accounts')
      t.notMatch(theirs.body, 'EU Acme', "another user does not see it")
      t.equal((await o.post(`/accounts/saved-searches/${rows[0]!.uuid}/delete`)).statusCode, 404, 'nor delete it')
      t.equal((await c.post(`/accounts/saved-searches/${rows[0]!.uuid}/delete`)).statusCode, 303, `POST /accounts/saved-searches/${rows[0]!.uuid}/delete answers 303`)
      t.equal((await app.db.selectFrom('saved_searches').selectAll().execute()).length, 0, 'the saved_searches rows\' count is 0')
    })

    t.test('Add Account creates an account with every field; bad input changes nothing', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const admin = await createUser(app, { role: 64 })
      const basic = await createUser(app, { role: 16 })
      await createAccount(app)
      const c = new Client(app)
      await c.signIn(admin.username)
      const form = await c.get('/accounts/new', { 'hx-request': 'true' })
      for (const label of ['Add Account', 'Customer Name', 'Licensed Apps', 'Instance URL', 'Contact Email', 'License Expiration']) t.match(form.body, label, `the Add Account form shows ${label}`)
      let res = await c.post('/accounts/new', { container_name: '', contact_email: 'not-an-email', instance_url: 'ftp://x', licensed_assets: '-5' })
      t.equal(res.statusCode, 422, 'POST /accounts/new answers 422')
      t.match(res.body, 'Enter the customer name.', 'the answer to POST /accounts/new shows \'Enter the customer name.\'')
      t.equal((await app.db.selectFrom('accounts').selectAll().execute()).length, 1, 'nothing stored')
      const body = new URLSearchParams([
        ['_csrf', c.csrf], ['container_name', 'Northwind Traders'], ['site_id', 'US-777'], ['region', 'US'],
        ['licensed_apps', 'was'], ['licensed_apps', 'vm'], ['licensed_assets', '40'], ['licensed_assets_limit', '50'],
        ['license_expiration', '2030-01-31'], ['instance_url', 'https://northwind.example/'], ['contact_email', 'sec@northwind.example'],
        ['domains', 'northwind.example, nw.example'], ['notes', 'New customer'],
      ])
      res = await app.inject({ method: 'POST', url: '/accounts/new', payload: body.toString(), headers: { ...c.headers(), 'content-type': 'application/x-www-form-urlencoded' } })
      t.equal(res.statusCode, 303, 'POST /accounts/new answers 303')
      const row = await app.db.selectFrom('accounts').selectAll().where('container_name', '=', 'Northwind Traders').executeTakeFirstOrThrow()
      t.match(row, { licensed_apps: 'vm,was', licensed_assets: 40, licensed_assets_limit: 50, license_utilization: 80, license_expiration_date: Date.UTC(2030, 0, 31), instance_url: 'https://northwind.example', contact_email: 'sec@northwind.example', domains: '["northwind.example","nw.example"]', created_by: admin.id }, 'the new account is stored with the fields from the form')
      t.match((await c.get('/accounts')).body, 'Account created successfully', 'the answer to GET /accounts shows \'Account created successfully\'')
      t.match((await c.get('/accounts?q=northwind', { 'hx-request': 'true' })).body, 'Northwind Traders', 'the answer to GET /accounts?q=northwind shows \'Northwind Traders\'')
      const b = new Client(app)
      await b.signIn(basic.username)
      t.equal((await b.get('/accounts/new')).statusCode, 403, 'GET /accounts/new answers 403')
    })
  })
}
