import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { parse } from 'csv-parse/sync'
import zlib from 'node:zlib'
import { type Tap, BASIC, ADMINISTRATOR, HTMX, Client, assign, buildTestApp, createAccount, createUser, dialects } from '../helper.ts'
import { CSV_COLUMNS, IMPORT_COLUMNS, neutralise, readImport, signImport, verifyImport } from '../../src/areas/accounts/csv.ts'
import { insertAccounts } from '../../src/areas/accounts/repository.ts'
import { importAccounts } from '../../src/areas/accounts/service.ts'
import { hmac, uuid } from '../../src/lib/tokens.ts'

function csvRows(res: LightMyRequestResponse): string[][] {
  return parse(res.body, { bom: true }) as string[][]
}

function multipart(fields: Record<string, string>, file?: { data: Buffer | string; filename?: string } | null) {
  const boundary = `----accounts${Math.random().toString(16).slice(2)}`
  const parts: Buffer[] = []
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`))
  if (file) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${file.filename ?? 'accounts.csv'}"\r\nContent-Type: text/csv\r\n\r\n`))
    parts.push(Buffer.isBuffer(file.data) ? file.data : Buffer.from(file.data), Buffer.from('\r\n'))
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`))
  return { payload: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` }
}

/** Uploads a CSV from the signed-in browser client, as the import page's form does. */
function upload(client: Client, csv: Buffer | string | null, headers: Record<string, string> = {}) {
  const { payload, contentType } = multipart({ _csrf: client.csrf }, csv === null ? null : { data: csv })
  return client.app.inject({ method: 'POST', url: '/accounts/import', payload, headers: { ...client.headers(), 'content-type': contentType, ...headers } })
}

function hidden(body: string, name: string): string {
  const value = new RegExp(`name="${name}" value="([^"]*)"`).exec(body)?.[1]
  if (value === undefined) throw new Error(`no ${name} field`)
  return value.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>')
}

async function accountCount(app: FastifyInstance): Promise<number> {
  return (await app.db.selectFrom('accounts').select('id').execute()).length
}

const HEADER = 'Customer Name,Custom Name,Site Identifier,Region,Licensed Apps,Licensed Assets,Licensed Assets Limit,License Expiration Date,Notes,LMS Customer ID,SSO Username,Domains,Instance URL,Contact Email'

for (const dialect of dialects) {
  t.test(`${dialect}: accounts CSV export and import`, async (t) => {
    async function setup(t: Tap) {
      const { app } = await buildTestApp(t, dialect)
      const admin = await createUser(app, { role: ADMINISTRATOR })
      const basic = await createUser(app, { role: BASIC })
      const acme = await createAccount(app, {
        container_name: 'Acme Logistics', custom_name: '=HYPERLINK("http://evil.example","click")', site_id: 'EU-100', region: 'EU', licensed_apps: 'vm,was',
        notes: '+1 555 0100, said "hi"\nsecond line', licensed_assets: 95, licensed_assets_limit: 100, license_expiration_date: Date.UTC(2030, 5, 30), domains: '["acme.example","acme.test"]',
        sso_username: '@acme', lms_customer_id: '-42',
      })
      const bluefin = await createAccount(app, { container_name: 'Bluefin Capital', region: 'US', licensed_apps: 'cs', notes: '\tTabbed' })
      const cedar = await createAccount(app, { container_name: 'Cedar Health', region: 'US', notes: '\rCarriage' })
      await assign(app, basic.id, [acme.id])
      const adminClient = new Client(app)
      await adminClient.signIn(admin.username)
      const basicClient = new Client(app)
      await basicClient.signIn(basic.username)
      return { app, admin, basic, acme, bluefin, cedar, adminClient, basicClient }
    }

    t.test('export: headers, only visible rows, formulas neutralised, an attachment named by date', async (t) => {
      const { adminClient, basicClient, acme } = await setup(t)
      const res = await basicClient.get('/accounts/export.csv')
      t.equal(res.statusCode, 200, 'a Basic user may export')
      t.match(res.headers['content-type'], /^text\/csv; charset=utf-8/, 'the export is UTF-8 CSV')
      t.match(res.headers['content-disposition'], /^attachment; filename="accounts-\d{4}-\d{2}-\d{2}\.csv"$/, 'the export is an attachment named accounts-<date>.csv')
      t.equal(res.headers['content-disposition'], `attachment; filename="accounts-${new Date().toISOString().slice(0, 10)}.csv"`, 'the attachment is named by today\'s date')
      t.ok(res.body.startsWith('\uFEFF'), 'a BOM for Excel')
      const rows = csvRows(res)
      t.same(rows[0], CSV_COLUMNS.map((c) => c.header), 'the header row is the CSV columns, in order')
      t.same(rows[0], ['UUID', 'Customer Name', 'Custom Name', 'Site Identifier', 'Region', 'Licensed Apps', 'Licensed Assets', 'Licensed Assets Limit', 'License Utilization (%)', 'License Expiration Date', 'Logo UUID', 'Notes', 'LMS Customer ID', 'SSO Username', 'Domains', 'Instance URL', 'Contact Email', 'Created', 'Modified'], 'the header row names all nineteen columns')
      t.equal(rows.length, 2, 'a Basic user with 1 of 3 accounts exports only that one')
      const row = Object.fromEntries(rows[0]!.map((h, i) => [h, rows[1]![i]]))
      t.match(row, {
        UUID: acme.uuid, 'Customer Name': 'Acme Logistics', 'Site Identifier': 'EU-100', Region: 'EU', 'Licensed Apps': 'vm;was', 'Licensed Assets': '95',
        'Licensed Assets Limit': '100', 'License Utilization (%)': '95', 'License Expiration Date': '2030-06-30', 'Logo UUID': '', Domains: 'acme.example;acme.test',
      }, 'the exported row holds Acme\'s fields, lists joined by semicolons')
      t.equal(row['Custom Name'], `'=HYPERLINK("http://evil.example","click")`, '= neutralised')
      t.equal(row.Notes, `'+1 555 0100, said "hi"\nsecond line`, '+ neutralised; quotes and line breaks survive')
      t.equal(row['SSO Username'], "'@acme", '@ neutralised')
      t.equal(row['LMS Customer ID'], "'-42", '- neutralised')
      t.match(row.Created, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, 'Created is an ISO 8601 time')
      t.equal(row.Created, new Date(acme.created_at).toISOString(), 'Created is the account\'s creation time')
      t.equal(row.Modified, new Date(acme.modified_at).toISOString(), 'Modified is the account\'s modification time')

      const all = csvRows(await adminClient.get('/accounts/export.csv'))
      t.equal(all.length, 4, 'the Administrator exports all three')
      const notes = all.slice(1).map((r) => r[11])
      t.ok(notes.includes("'\tTabbed") && notes.includes("'\rCarriage"), 'tab and CR neutralised')
      t.same(['=1', '+1', '-1', '@1', '\t1', '\r1', 'a=1', '1', 5, null].map(neutralise), ["'=1", "'+1", "'-1", "'@1", "'\t1", "'\r1", 'a=1', '1', 5, null], 'neutralise prefixes =, +, -, @, tab and CR with an apostrophe and leaves the rest')
    })

    t.test('export follows the Accounts page query string; everyone may export; anonymous may not', async (t) => {
      const { app, adminClient } = await setup(t)
      const names = async (qs: string) => csvRows(await adminClient.get(`/accounts/export.csv${qs}`)).slice(1).map((r) => r[1]).sort()
      t.same(await names('?region=US'), ['Bluefin Capital', 'Cedar Health'], '?region=US exports the US accounts')
      t.same(await names('?q=acme'), ['Acme Logistics'], '?q=acme exports the matching account')
      t.same(await names('?app=cs'), ['Bluefin Capital'], '?app=cs exports the accounts licensed for cs')
      t.same(await names('?q=zzz'), [], 'a search matching nothing exports no rows')
      t.same(await names('?page=99&sort=bogus&region='), ['Acme Logistics', 'Bluefin Capital', 'Cedar Health'], 'the page\'s lenient parsing')
      const anon = await app.inject({ url: '/accounts/export.csv' })
      t.equal(anon.statusCode, 303, 'an anonymous export is redirected')
      t.match(anon.headers.location, /^\/login/, 'to the sign-in page')
    })

    t.test('export streams more rows than one batch, each once', async (t) => {
      const { app, admin, adminClient } = await setup(t)
      const now = Date.now()
      const rows = Array.from({ length: 2300 }, (_, i) => ({ uuid: uuid(), container_name: `Bulk ${String(i).padStart(4, '0')}`, licensed_apps: 'vm', licensed_assets: 0, licensed_assets_limit: 0, notes: '', domains: '[]', logo_id: null, created_by: admin.id, created_at: now, modified_at: now }))
      await app.db.transaction().execute((trx) => insertAccounts(trx, rows))
      const out = csvRows(await adminClient.get('/accounts/export.csv'))
      t.equal(out.length, 1 + 3 + 2300, 'the header, the 3 accounts and the 2300 inserted rows')
      t.equal(new Set(out.slice(1).map((r) => r[0])).size, 2303, 'no row twice')
    })

    t.test('import page and template: Administrators only', async (t) => {
      const { adminClient, basicClient } = await setup(t)
      const page = await adminClient.get('/accounts/import')
      t.equal(page.statusCode, 200, 'an Administrator sees the import page')
      t.match(page.body, 'type="file"', 'the page has a file input')
      t.match(page.body, 'enctype="multipart/form-data"', 'the form posts multipart')
      t.match(page.body, 'name="_csrf"', 'the form carries the CSRF token')
      t.match(page.body, '/accounts/import/template.csv', 'the page links the template')
      for (const c of IMPORT_COLUMNS) t.match(page.body, c.header, `documents ${c.header}`)
      const template = await adminClient.get('/accounts/import/template.csv')
      t.equal(template.statusCode, 200, 'the template downloads')
      t.match(template.headers['content-disposition'], /attachment; filename="accounts-import-template.csv"/, 'the template is an attachment')
      t.same(csvRows(template), [HEADER.split(',')], 'the template is the header row alone')
      t.equal((await basicClient.get('/accounts/import')).statusCode, 403, 'a Basic user cannot open the import page')
      t.equal((await basicClient.get('/accounts/import/template.csv')).statusCode, 403, 'a Basic user cannot download the template')
      await basicClient.get('/accounts')
      t.equal((await upload(basicClient, `${HEADER}\nX`)).statusCode, 403, 'a Basic user cannot upload')
      t.equal((await basicClient.post('/accounts/import/confirm', { payload: 'x', signature: 'y' })).statusCode, 403, 'a Basic user cannot confirm an import')
    })

    t.test('a preview with errors lists them by row and writes nothing', async (t) => {
      const { app, adminClient } = await setup(t)
      await adminClient.get('/accounts/import')
      const csv = [
        'Customer Name,Licensed Apps,Licensed Assets,License Expiration Date,Contact Email,Domains',
        'Good One,vm,10,2030-01-31,a@good.example,good.example',
        ',vm,1,,,',
        'Bad App,nessus;vm,1,,,',
        'Bad Number,,ten,,,',
        '',
        'Bad Date,,,31/01/2030,,',
        'Bad Email,,,,not-an-email,bad_domain',
        `${'x'.repeat(201)},,,,,`,
        'Too Many Cells,,,,,,extra',
      ].join('\r\n')
      const before = await accountCount(app)
      const res = await upload(adminClient, csv)
      t.equal(res.statusCode, 422, 'a file with errors answers 422')
      t.match(res.body, '8 rows read: 1 valid, 7 with errors', 'the preview counts valid rows and rows with errors')
      const cells = [...res.body.matchAll(/<tr><th scope="row">(\d+)<\/th><td>([\s\S]*?)<\/td><\/tr>/g)].map((m) => [Number(m[1]), m[2]!.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim()] as const)
      t.same(cells.map((c) => c[0]), [3, 4, 5, 7, 8, 9, 10], 'row numbers as a spreadsheet counts them (header = 1, blank rows counted, not reported)')
      const byRow = new Map(cells)
      t.match(byRow.get(3), 'Customer Name: the cell is empty; it is required.', 'row 3: the empty customer name')
      t.match(byRow.get(4), 'Licensed Apps: &quot;nessus&quot; is not a licensed app', 'row 4: the unknown app')
      t.match(byRow.get(5), 'Licensed Assets: &quot;ten&quot; is not a whole number', 'row 5: the non-number')
      t.match(byRow.get(7), 'License Expiration Date', 'row 7: the bad date')
      t.match(byRow.get(8), 'Contact Email', 'row 8: the bad e-mail')
      t.match(byRow.get(8), 'Domains', 'row 8: the bad domain')
      t.match(byRow.get(9), 'Customer Name', 'row 9: the too long name')
      t.match(byRow.get(10), 'The row has 7 cells; the header has 6', 'row 10: the cell count')
      t.notMatch(res.body, /Import \d+ account/, 'no import button')
      t.notMatch(res.body, 'name="signature"', 'no signed payload to confirm')
      t.equal(await accountCount(app), before, 'nothing written')

      const frag = await upload(adminClient, csv, HTMX)
      t.equal(frag.statusCode, 422, 'the htmx upload with errors answers 422 too')
      t.match(frag.body, /^<div id="import-panel">/, 'htmx gets the panel only')
      t.notMatch(frag.body, '<html', 'htmx gets no full page')
    })

    t.test('file-level problems: not CSV, unknown columns, empty, too many rows, too large', async (t) => {
      const { app, adminClient } = await setup(t)
      await adminClient.get('/accounts/import')
      const before = await accountCount(app)
      const cases: Array<[string | Buffer, RegExp | string]> = [
        ['', 'The file is empty'],
        ['Customer Name\n', 'no accounts'],
        ['Customer Name,Colour\nA,red\n', /Not recognised: &quot;Colour&quot;/],
        ['Region\nEU\n', 'needs a &quot;Customer Name&quot; column'],
        ['Customer Name,Customer\nA,B\n', 'a second'],
        ['Customer Name,Notes\nA,"unclosed\n', 'is not valid CSV'],
        [`Customer Name\n${'Acme\n'.repeat(10_001)}`, 'more than 10,000 rows'],
        [Buffer.alloc(5 * 1024 * 1024 + 10, 'a'), 'larger than 5 MB'],
      ]
      for (const [csv, message] of cases) {
        const res = await upload(adminClient, csv)
        t.equal(res.statusCode, 422, String(message))
        t.match(res.body, message, 'the file-level problem is explained')
        t.notMatch(res.body, 'name="signature"', 'no signed payload to confirm')
      }
      const none = await upload(adminClient, null)
      t.equal(none.statusCode, 422, 'an upload without a file answers 422')
      t.match(none.body, 'Choose a CSV file', 'it asks for a CSV file')
      t.equal(await accountCount(app), before, 'no file-level problem wrote an account')
    })

    t.test('a good file: preview, then Import N accounts writes them all in one go', async (t) => {
      const { app, admin, adminClient } = await setup(t)
      await adminClient.get('/accounts/import')
      const csv = [
        // Any column order, header spellings by field name or label.
        'notes,Customer Name,licensed_apps,Licensed Assets,Licensed Assets Limit,License Expiration Date,Domains,Custom Name,Region,Instance URL',
        `"Multi\nline",Delta Freight,"Vulnerability Management;was",1200,"2,000",2031-12-31,delta.example;delta.test,'=SUM(A1),APAC,https://delta.example.com/`,
        'Line two,Echo Retail,CS,,,2031-01-01T12:30:00Z,,,,',
        'Three,Foxtrot,,0,0,1893456000000,,,,',
      ].join('\r\n')
      const res = await upload(adminClient, csv)
      t.equal(res.statusCode, 200, res.body.slice(0, 500))
      t.match(res.body, '3 rows read: 3 valid, 0 with errors', 'the preview counts 3 valid rows')
      t.match(res.body, 'Import 3 accounts', 'the preview offers to import 3 accounts')
      t.match(res.body, 'Delta Freight', 'the preview lists the rows')
      t.equal(await accountCount(app), 3, 'the preview writes nothing')

      const confirm = await adminClient.post('/accounts/import/confirm', { payload: hidden(res.body, 'payload'), signature: hidden(res.body, 'signature') })
      t.equal(confirm.statusCode, 303, 'the confirmation redirects')
      t.equal(confirm.headers.location, '/accounts', 'back to Accounts')
      const next = await adminClient.get('/accounts')
      t.match(next.body, 'Imported 3 accounts', 'the flash')
      t.equal(await accountCount(app), 6, 'the three accounts are written')

      const delta = await app.db.selectFrom('accounts').selectAll().where('container_name', '=', 'Delta Freight').executeTakeFirstOrThrow()
      t.match(delta, { custom_name: '=SUM(A1)', notes: 'Multi\nline', licensed_apps: 'vm,was', licensed_assets: 1200, licensed_assets_limit: 2000, license_utilization: 60, license_expiration_date: Date.UTC(2031, 11, 31), region: 'APAC', instance_url: 'https://delta.example.com', created_by: admin.id }, 'Delta\'s fields are read from any column order and spelling')
      t.same(JSON.parse(delta.domains), ['delta.example', 'delta.test'], 'Delta\'s domains are stored as a list')
      const echo = await app.db.selectFrom('accounts').selectAll().where('container_name', '=', 'Echo Retail').executeTakeFirstOrThrow()
      t.match(echo, { licensed_apps: 'cs', license_expiration_date: Date.UTC(2031, 0, 1, 12, 30), licensed_assets: 0, custom_name: null }, 'Echo\'s app name, time and empty cells are read')
      const search = await adminClient.get('/accounts?q=freight')
      t.match(search.body, 'Delta Freight', 'imported accounts are searchable')

      const audit = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'account.import').execute()
      t.equal(audit.length, 1, 'the import is audited once')
      t.match(JSON.parse(audit[0]!.fields), { accounts: 3 }, 'the audit counts the accounts')
      t.equal(audit[0]!.actor_user_id, admin.id, 'the audit names the Administrator')

      // The same confirmation again (a double click, the Back button): refused, nothing doubled.
      await adminClient.get('/accounts/import')
      const again = await adminClient.post('/accounts/import/confirm', { payload: hidden(res.body, 'payload'), signature: hidden(res.body, 'signature') })
      t.equal(again.statusCode, 409, 'a second confirmation of the same preview is refused')
      t.match(again.body, 'already been imported', 'it says the preview has already been imported')
      t.equal(await accountCount(app), 6, 'no account is doubled')
    })

    t.test('the import is all-or-nothing: a failure in a later batch leaves no account behind', async (t) => {
      const { app, admin } = await setup(t)
      const good = (await readImport(Buffer.from(`Customer Name\n${Array.from({ length: 150 }, (_, i) => `Row ${i}`).join('\n')}\n`))).rows
      t.equal(good.length, 150, '150 rows are read')
      // A row the database refuses (validation would never let it through): the 121st, in the second batch of inserts.
      const rows = good.map((r, i) => (i === 120 ? { ...r, container_name: null as unknown as string } : r))
      const actor = { user: admin, assistedBy: null, ip: '127.0.0.1' }
      await t.rejects(importAccounts(app, actor, rows, uuid(), Date.now()), 'a row the database refuses fails the import')
      t.equal(await accountCount(app), 3, 'the first batch was rolled back')
      t.equal((await app.db.selectFrom('audit_events').select('id').where('action', '=', 'account.import').execute()).length, 0, 'a failed import is not audited')
      t.equal(await importAccounts(app, actor, good, uuid(), Date.now()), 150, 'the good rows import, all 150')
      t.equal(await accountCount(app), 153, '150 more accounts than the 3')
    })

    t.test('with htmx the preview swaps in place and the confirmation redirects', async (t) => {
      const { app, adminClient } = await setup(t)
      await adminClient.get('/accounts/import')
      const res = await upload(adminClient, 'Customer Name\nGolf\n', HTMX)
      t.equal(res.statusCode, 200, 'the htmx upload answers 200')
      t.match(res.body, /^<div id="import-panel">/, 'htmx gets the panel only')
      t.match(res.body, 'Import 1 account<', 'the panel offers to import 1 account')
      t.match(res.body, 'hx-post="/accounts/import/confirm"', 'the confirmation posts through htmx')
      const confirm = await adminClient.post('/accounts/import/confirm', { payload: hidden(res.body, 'payload'), signature: hidden(res.body, 'signature') }, HTMX)
      t.equal(confirm.statusCode, 204, 'the htmx confirmation answers 204')
      t.equal(confirm.headers['hx-redirect'], '/accounts', 'and redirects htmx to Accounts')
      t.equal(await accountCount(app), 4, 'the account is written')
    })

    t.test('a tampered, foreign or expired confirmation is refused and writes nothing', async (t) => {
      const { app, adminClient } = await setup(t)
      await adminClient.get('/accounts/import')
      const res = await upload(adminClient, 'Customer Name,Licensed Assets\nHotel,5\n')
      const payload = hidden(res.body, 'payload')
      const signature = hidden(res.body, 'signature')

      // Change the rows and re-encode them (as an attacker could), keeping the signature.
      const body = JSON.parse(zlib.inflateRawSync(Buffer.from(payload, 'base64url')).toString())
      body.rows[0].container_name = 'Injected'
      body.rows.push({ ...body.rows[0], container_name: 'Extra' })
      const forged = zlib.deflateRawSync(JSON.stringify(body)).toString('base64url')
      const attempts: Array<Record<string, string>> = [
        { payload: forged, signature },
        { payload, signature: signature.slice(0, -2) + (signature.endsWith('AA') ? 'BB' : 'AA') },
        { payload, signature: hmac(Buffer.alloc(32, 7), `accounts-import:v1:${payload}`) },
        { payload },
        { payload: 'garbage', signature: 'garbage' },
        {},
      ]
      for (const form of attempts) {
        const r = await adminClient.post('/accounts/import/confirm', form)
        t.equal(r.statusCode, 400, JSON.stringify(Object.keys(form)))
        t.match(r.body, 'could not be verified', 'the page says the confirmation could not be verified')
      }
      t.equal(await accountCount(app), 3, 'nothing written')

      // Another Administrator cannot confirm this preview.
      const other = await createUser(app, { role: ADMINISTRATOR })
      const otherClient = new Client(app)
      await otherClient.signIn(other.username)
      await otherClient.get('/accounts/import')
      t.equal((await otherClient.post('/accounts/import/confirm', { payload, signature })).statusCode, 400, 'another Administrator cannot confirm this preview')

      // Without the CSRF token: refused before anything is read.
      t.equal((await app.inject({ method: 'POST', url: '/accounts/import/confirm', payload: new URLSearchParams({ payload, signature }).toString(), headers: { ...adminClient.headers(), 'content-type': 'application/x-www-form-urlencoded' } })).statusCode, 403, 'a confirmation without the CSRF token is refused')
      t.equal(await accountCount(app), 3, 'nothing written by the refused confirmations')

      // The original still works.
      t.equal((await adminClient.post('/accounts/import/confirm', { payload, signature })).statusCode, 303, 'the original confirmation still works')
      t.equal(await accountCount(app), 4, 'its account is written')
    })

    t.test('an export can be imported again; Excel\'s semicolons and Windows-1252 are read', async (t) => {
      const { app, adminClient } = await setup(t)
      const exported = await adminClient.get('/accounts/export.csv')
      await adminClient.get('/accounts/import')
      const res = await upload(adminClient, exported.rawPayload)
      t.equal(res.statusCode, 200, res.body.slice(0, 300))
      t.match(res.body, '3 rows read: 3 valid', 'an export is read back, all rows valid')
      t.match(res.body, 'Ignored export-only columns: UUID, License Utilization (%), Logo UUID, Created, Modified', 'the export-only columns are named as ignored')
      await adminClient.post('/accounts/import/confirm', { payload: hidden(res.body, 'payload'), signature: hidden(res.body, 'signature') })
      const copies = await app.db.selectFrom('accounts').selectAll().where('container_name', '=', 'Acme Logistics').execute()
      t.equal(copies.length, 2, 'the export\'s Acme is imported as a second Acme')
      t.equal(copies[1]!.custom_name, '=HYPERLINK("http://evil.example","click")', 'the export\'s apostrophe is removed again')
      t.equal(copies[1]!.notes, '+1 555 0100, said "hi"\nsecond line', 'notes keep their quotes and line breaks')
      t.equal(copies[1]!.licensed_apps, 'vm,was', 'licensed apps are read back from the export')

      const latin1 = Buffer.from('Customer Name;Region\r\nCafé Zürich;EU\r\n', 'latin1')
      const r2 = await upload(adminClient, latin1)
      t.equal(r2.statusCode, 200, 'a Windows-1252 file with semicolons is read')
      t.match(r2.body, 'Café Zürich', 'its accented name is decoded')
    })
  })
}

t.test('readImport and the signature, without a server', async (t) => {
  const ok = await readImport(Buffer.from(`\uFEFF${HEADER}\nAcme,,S-1,EU,vm;was,1,2,2030-01-01,Note,L1,sso,a.example,https://a.example,x@a.example\n`))
  t.equal(ok.errors.length, 0, 'a good row has no errors')
  t.match(ok.rows[0], { container_name: 'Acme', site_id: 'S-1', licensed_apps: ['vm', 'was'], licensed_assets: 1, licensed_assets_limit: 2, notes: 'Note', domains: ['a.example'], contact_email: 'x@a.example' }, 'a template row is read into its fields')
  const key = Buffer.alloc(32, 1)
  const signed = signImport(key, 5, ok.rows)
  const verified = verifyImport(key, 5, signed)
  t.ok(verified.ok, 'a fresh signature verifies')
  if (verified.ok) t.same(verified.rows, ok.rows, 'the verified rows are the signed rows')
  t.notOk(verifyImport(key, 6, signed).ok, 'bound to the user')
  t.notOk(verifyImport(Buffer.alloc(32, 2), 5, signed).ok, 'bound to the key')
  const expired = verifyImport(key, 5, signImport(key, 5, ok.rows, Date.now() - 2 * 3_600_000))
  t.same(expired, { ok: false, reason: 'This preview has expired. Upload the file again.' }, 'a two-hour-old preview has expired')
  const bad = await readImport(Buffer.from('Customer Name,Licensed Apps\nA,vm;bogus;was\n'))
  t.same(bad.errors, [{ row: 2, messages: ['Licensed Apps: "bogus" is not a licensed app (use vm, was, cs or their names).'] }], 'an unknown app is reported by row with the accepted names')
})
