// The Logos pages, the logo images and the /mssp/logos API, on SQLite and PostgreSQL.
import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { PNG } from 'pngjs'
import { HTMX, Client, buildTestApp, createUser, dialects } from '../helper.ts'
import { crc32, decodePng } from '../../src/lib/png.ts'
import { insertAccount } from '../../src/areas/accounts/repository.ts'
import { PORTAL_CONTAINER_UUID, seedDemoLogos } from '../../src/areas/logos/service.ts'
import { uuid } from '../../src/lib/tokens.ts'

// ---- fixtures, built in code ------------------------------------------------------------

function makePng(width: number, height: number, rgba: [number, number, number, number] = [30, 90, 200, 255]): Buffer {
  const png = new PNG({ width, height })
  for (let i = 0; i < width * height; i++) png.data.set(rgba, i * 4)
  return PNG.sync.write(png)
}

function chunk(type: string, data: Buffer = Buffer.alloc(0)): Buffer {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([len, body, crc])
}

function headerOnly(width: number, height: number): Buffer {
  const d = Buffer.alloc(13)
  d.writeUInt32BE(width, 0)
  d.writeUInt32BE(height, 4)
  d[8] = 8
  d[9] = 6
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', d)])
}

const GOOD = makePng(246, 52)
/** A valid PNG carrying a text chunk: the stored copy must not carry it. */
const GOOD_WITH_TEXT = Buffer.concat([GOOD.subarray(0, 33), chunk('tEXt', Buffer.from('Comment\0secret-note')), GOOD.subarray(33)])
const JPEG = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]), Buffer.from('JFIF\0', 'latin1'), Buffer.alloc(300, 7), Buffer.from([0xff, 0xd9])])
const SVG = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>')
/** Over the 256 KiB upload limit: random pixels do not compress. */
const HUGE = Buffer.concat([GOOD, Buffer.alloc(300 * 1024, 1)])

const BAD_FILES: Array<{ name: string; data: Buffer | null; filename?: string; message: RegExp }> = [
  { name: '247x52', data: makePng(247, 52), message: /247 x 52 pixels/ },
  { name: '246x53', data: makePng(246, 53), message: /246 x 53 pixels/ },
  { name: 'a header declaring 100000x100000', data: headerOnly(100_000, 100_000), message: /100000 x 100000 pixels/ },
  { name: 'a truncated PNG', data: GOOD.subarray(0, Math.floor(GOOD.length / 2)), message: /damaged or incomplete/ },
  { name: 'a JPEG named .png', data: JPEG, message: /not a PNG image/ },
  { name: 'an SVG named .png', data: SVG, message: /not a PNG image/ },
  { name: 'an empty file', data: Buffer.alloc(0), filename: 'empty.png', message: /The file is empty/ },
  { name: 'a file over the upload limit', data: HUGE, message: /The file is too large/ },
  { name: 'no file chosen (an empty file input)', data: Buffer.alloc(0), filename: '', message: /Choose a \.png file/ },
  { name: 'no file part at all', data: null, message: /Choose a \.png file/ },
]

// ---- multipart requests -----------------------------------------------------------------

interface FilePart {
  field?: string
  filename?: string
  data: Buffer
  type?: string
}

function multipart(fields: Record<string, string>, file?: FilePart | null) {
  const boundary = `----logos${Math.random().toString(16).slice(2)}`
  const parts: Buffer[] = []
  for (const [k, v] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`))
  }
  if (file) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${file.field ?? 'logo'}"; filename="${file.filename ?? 'logo.png'}"\r\nContent-Type: ${file.type ?? 'image/png'}\r\n\r\n`))
    parts.push(file.data, Buffer.from('\r\n'))
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`))
  return { payload: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` }
}

/** Posts a multipart form from the signed-in browser client (its cookie and CSRF token). */
function postForm(client: Client, url: string, fields: Record<string, string>, file?: FilePart | null, headers: Record<string, string> = {}) {
  const { payload, contentType } = multipart({ _csrf: client.csrf, ...fields }, file)
  return client.app.inject({ method: 'POST', url, payload, headers: { ...client.headers(), 'content-type': contentType, ...headers } })
}

function apiForm(app: FastifyInstance, method: 'POST' | 'PATCH', url: string, keys: string, fields: Record<string, string>, file?: FilePart | null) {
  const { payload, contentType } = multipart(fields, file)
  return app.inject({ method, url, payload, headers: { 'x-apikeys': keys, 'content-type': contentType } })
}

// ---- helpers ----------------------------------------------------------------------------

async function signedIn(t: Test, dialect: (typeof dialects)[number], role = 64) {
  const { app } = await buildTestApp(t, dialect)
  const user = await createUser(app, { role })
  const client = new Client(app)
  await client.signIn(user.username)
  await client.get(role === 64 ? '/logos' : '/accounts')
  return { app, user, client }
}

const apiKeysFor = async (client: Client): Promise<string> => (await client.apiKeys())['x-apikeys']

function allLogos(app: FastifyInstance) {
  return app.db.selectFrom('logos').selectAll().orderBy('id').execute()
}

async function addLogo(client: Client, name: string, data = GOOD, filename = 'logo.png') {
  const res = await postForm(client, '/logos', { name }, { data, filename })
  if (res.statusCode !== 303) throw new Error(`adding ${name}: ${res.statusCode}\n${res.body}`)
  const logo = await client.app.db.selectFrom('logos').selectAll().where('name', '=', name).orderBy('id', 'desc').executeTakeFirstOrThrow()
  return logo
}

let accountCounter = 0
async function addAccount(app: FastifyInstance, logoId: number | null, name = `Customer ${++accountCounter}`) {
  const now = Date.now()
  return insertAccount(app.db, { uuid: uuid(), container_name: name, logo_id: logoId, licensed_apps: '', licensed_assets: 0, licensed_assets_limit: 0, notes: '', domains: '[]', created_by: null, created_at: now, modified_at: now })
}

function flashOf(res: LightMyRequestResponse): string | undefined {
  return /<div class="flash flash-success" role="status"[^>]*>([^<]*)</.exec(res.body)?.[1]
}

function alertOf(res: LightMyRequestResponse): string {
  return [...res.body.matchAll(/class="(?:alert alert-error|field-error)"[^>]*>([^<]*)</g)].map((m) => m[1]).join(' | ')
}

// ---- tests ------------------------------------------------------------------------------

for (const dialect of dialects) {
  t.test(`${dialect}: Logos`, async (t) => {
    t.test('the Logos page: heading, Add Logo, empty state; the Add Logo plane by its labels', async (t) => {
      const { client } = await signedIn(t, dialect)
      const page = await client.get('/logos')
      t.equal(page.statusCode, 200, 'GET /logos answers 200')
      t.match(page.body, /<h1>Logos<\/h1>/, 'the answer to GET /logos shows /<h1>Logos<\\/h1>/')
      t.match(page.body, /href="\/logos\/new"[^>]*hx-get="\/logos\/new"[^>]*hx-target="#plane"[^>]*><span aria-hidden="true">⊕<\/span> Add Logo<\/a>/, 'the answer to GET /logos shows /href="\\/logos\\/new"[^>]*hx-get="\\/logos\\/new"[^>]…/')
      t.match(page.body, /No logos yet/, 'the answer to GET /logos shows /No logos yet/')
      t.match(page.body, /hx-trigger="logos-changed from:body"/, 'the table refreshes itself on logos-changed')
      t.match(page.body, /aria-current="page">Logos</, 'the navigation marks Logos')

      const add = await client.get('/logos/new')
      t.equal(add.statusCode, 200, 'GET /logos/new answers 200')
      t.match(add.body, /<!doctype html>/, 'a whole page without htmx')
      for (const label of ['<h2 id="plane-title">Add Logo</h2>', '<label for="logo-name">Name</label>', '<label for="logo-input">Add File</label>', '>Save</button>']) t.match(add.body, label, `the answer to GET /logos/new shows ${label}`)
      t.match(add.body, /type="file" accept="image\/png,\.png"/, 'the answer to GET /logos/new shows /type="file" accept="image\\/png,\\.png"/')
      t.match(add.body, /enctype="multipart\/form-data"/, 'works as a plain form post')
      t.match(add.body, /hx-encoding="multipart\/form-data"/, 'and with htmx')
      const plane = await client.get('/logos/new', HTMX)
      t.notMatch(plane.body, /<!doctype html>/i, 'only the plane for htmx')
      t.match(plane.body, /^<aside class="plane"/, 'the answer to GET /logos/new shows /^<aside class="plane"/')
    })

    t.test('Add Logo without htmx: stored re-encoded, 303 with the message, shown in the table', async (t) => {
      const { app, client, user } = await signedIn(t, dialect)
      const res = await postForm(client, '/logos', { name: '  Acme Corp  ' }, { data: GOOD_WITH_TEXT, filename: 'C:\\Users\\me\\acme.png' })
      t.equal(res.statusCode, 303, 'Add Logo redirects')
      t.equal(res.headers.location, '/logos', 'to the Logos page')
      const [logo] = await allLogos(app)
      t.ok(logo, 'the logo is stored')
      t.equal(logo!.name, 'Acme Corp', 'name trimmed')
      t.equal(logo!.filename, 'acme.png', 'only the file name is kept')
      t.same([logo!.width, logo!.height], [246, 52], 'the stored size is the PNG\'s')
      t.equal(logo!.created_by, user.id, 'the logo records who created it')
      const stored = Buffer.from(logo!.png)
      const decoded = decodePng(stored)
      t.same([decoded.width, decoded.height], [246, 52], 'the stored bytes decode at the right size')
      t.same([...decoded.data.subarray(0, 4)], [30, 90, 200, 255], 'with the same pixels')
      t.notOk(stored.includes(Buffer.from('secret-note')), 'the stored bytes are re-encoded (the text chunk is gone)')

      const page = await client.get('/logos')
      t.equal(flashOf(page), 'Logo created successfully', 'flashOf(page) is \'Logo created successfully\'')
      t.match(page.body, `<img class="logo-thumb" src="/logos/${logo!.uuid}/logo.png?v=${logo!.updated_at}" alt="Acme Corp" width="246" height="52">`, 'the row shows the thumbnail, versioned by its update time')
      t.match(page.body, /<th scope="row" class="logo-name">Acme Corp<\/th>/, 'the answer to GET /logos shows /<th scope="row" class="logo-name">Acme Corp<\\/th>/')
      t.match(page.body, `aria-label="Edit logo Acme Corp"`, 'the answer to GET /logos shows \'aria-label="Edit logo Acme Corp"\'')
      t.match(page.body, `aria-label="Delete logo Acme Corp"`, 'the answer to GET /logos shows \'aria-label="Delete logo Acme Corp"\'')
      t.match(page.body, /<td class="num">0<\/td>/, 'used by no account yet')
      t.notMatch(page.body, /No logos yet/, 'the answer to GET /logos does not show /No logos yet/')
      const again = await client.get('/logos')
      t.equal(flashOf(again), undefined, 'the message shows once')

      const events = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'logo.create').execute()
      t.equal(events.length, 1, 'audited')
      t.equal(events[0]!.target_id, logo!.uuid, 'the audit names the logo')
    })

    t.test('Add Logo with htmx: the plane closes with the message and the table refreshes', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      const res = await postForm(client, '/logos', { name: 'Globex' }, { data: makePng(1, 1) }, HTMX)
      t.equal(res.statusCode, 200, 'the htmx Add Logo answers 200')
      t.equal(res.headers['hx-trigger'], 'logos-changed', 'res.headers[\'hx-trigger\'] is \'logos-changed\'')
      t.match(res.body, /data-plane-done>Logo created successfully</, 'the plane says the logo was created')
      t.equal((await allLogos(app)).length, 1, 'one logo stored')
      const table = await client.get('/logos', HTMX)
      t.match(table.body, /^<div id="logos-results"/, 'the table fragment for the refresh')
      t.match(table.body, /Globex/, 'the answer to GET /logos shows /Globex/')
      t.notMatch(table.body, /<h1>/, 'the answer to GET /logos does not show /<h1>/')
    })

    t.test('each bad file or name gives 422 on the plane, with the message, and stores nothing', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      for (const headers of [{}, HTMX]) {
        const mode = Object.keys(headers).length ? 'htmx' : 'form'
        for (const bad of BAD_FILES) {
          const res = await postForm(client, '/logos', { name: 'Bad' }, bad.data ? { data: bad.data, filename: bad.filename ?? 'logo.png' } : null, headers)
          t.equal(res.statusCode, 422, `${mode}: ${bad.name}: 422`)
          t.match(alertOf(res), bad.message, `${mode}: ${bad.name}: says why`)
          t.match(res.body, /<h2 id="plane-title">Add Logo<\/h2>/, `${mode}: ${bad.name}: the plane again`)
          t.match(res.body, /value="Bad"/, `${mode}: ${bad.name}: the name is kept`)
          if (mode === 'htmx') t.notMatch(res.body, /<!doctype/i, 'only the plane')
        }
        for (const [name, message] of [['', /Enter a name/], ['    ', /Enter a name/], ['x'.repeat(101), /at most 100 characters/]] as const) {
          const res = await postForm(client, '/logos', { name }, { data: GOOD }, headers)
          t.equal(res.statusCode, 422, `${mode}: name ${JSON.stringify(name.slice(0, 5))}: 422`)
          t.match(alertOf(res), message, `alertOf(res) matches ${message}`)
        }
        const noName = await postForm(client, '/logos', {}, { data: GOOD }, headers)
        t.equal(noName.statusCode, 422, `${mode}: no name field: 422`)
      }
      t.equal((await allLogos(app)).length, 0, 'nothing stored')
      const ok = await postForm(client, '/logos', { name: 'x'.repeat(100) }, { data: GOOD })
      t.equal(ok.statusCode, 303, 'a 100-character name is fine')
    })

    t.test('Edit Logo: rename, replace the file after ✕, bad input changes nothing', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      const logo = await addLogo(client, 'Initech', GOOD, 'initech.png')
      const url = `/logos/${logo.uuid}/edit`

      const edit = await client.get(url)
      t.equal(edit.statusCode, 200, `GET ${url} answers 200`)
      for (const label of ['<h2 id="plane-title">Edit Logo</h2>', '<label for="logo-name">Name</label>', 'value="Initech"', 'initech.png', 'aria-label="Remove file initech.png"', '>Save</button>']) t.match(edit.body, label, `the answer to GET ${url} shows ${label}`)
      t.notMatch(edit.body, /type="file"/, 'the current file is shown, not a file input')
      t.match(edit.body, `href="${url}?replace=1"`, 'the ✕ works without JavaScript too')
      const removed = await client.get(`${url}?replace=1`, HTMX)
      t.match(removed.body, /<label for="logo-input">Add File<\/label>/, 'after ✕: Add File')
      t.match(removed.body, /name="replace" value="1"/, `the answer to GET ${url}?replace=1 shows /name="replace" value="1"/`)
      t.match(removed.body, /id="logo-file"/, 'the part that hx-select takes')

      // Rename only (no file part, as a form with the current file shown sends).
      const renamed = await postForm(client, url, { name: 'Initech Ltd' }, null)
      t.equal(renamed.statusCode, 303, 'the rename redirects')
      let row = (await allLogos(app))[0]!
      t.equal(row.name, 'Initech Ltd', 'the new name is stored')
      t.ok(Buffer.from(row.png).equals(Buffer.from(logo.png)), 'the file is unchanged')
      t.equal(flashOf(await client.get('/logos')), 'Logo changes saved successfully', 'flashOf(client.get(\'/logos\')) is \'Logo changes saved successfully\'')

      // ✕ then Save without choosing a file: refused.
      const noFile = await postForm(client, url, { name: 'Initech Ltd', replace: '1' }, { data: Buffer.alloc(0), filename: '' })
      t.equal(noFile.statusCode, 422, 'an edit with replace and no file is refused')
      t.match(alertOf(noFile), /Choose a \.png file/, 'the refusal asks for a .png file')
      t.match(noFile.body, /<label for="logo-input">Add File<\/label>/, 'Add File is still offered')

      // Bad files: 422, nothing changes.
      for (const bad of BAD_FILES.slice(0, 8)) {
        const res = await postForm(client, url, { name: 'Changed?', replace: '1' }, { data: bad.data!, filename: bad.filename ?? 'bad.png' }, HTMX)
        t.equal(res.statusCode, 422, `${bad.name}: 422`)
        t.match(alertOf(res), bad.message, `${bad.name}: says why`)
      }
      const bigName = await postForm(client, url, { name: 'y'.repeat(101) }, null)
      t.equal(bigName.statusCode, 422, 'a too long name is refused')
      row = (await allLogos(app))[0]!
      t.equal(row.name, 'Initech Ltd', 'unchanged by refused edits')
      t.ok(Buffer.from(row.png).equals(Buffer.from(logo.png)), 'the refused edits kept the image')

      // A new file, with htmx.
      const replaced = await postForm(client, url, { name: 'Initech', replace: '1' }, { data: makePng(100, 20, [255, 255, 255, 255]), filename: 'initech-white.png' }, HTMX)
      t.equal(replaced.statusCode, 200, 'the htmx replacement answers 200')
      t.equal(replaced.headers['hx-trigger'], 'logos-changed', 'replaced.headers[\'hx-trigger\'] is \'logos-changed\'')
      t.match(replaced.body, /data-plane-done>Logo changes saved successfully</, 'the plane says the changes were saved')
      row = (await allLogos(app))[0]!
      t.equal(row.name, 'Initech', 'the name is changed')
      t.equal(row.filename, 'initech-white.png', 'the file name is the new file\'s')
      t.same([row.width, row.height], [100, 20], 'the size is the new image\'s')
      const d = decodePng(Buffer.from(row.png))
      t.same([d.width, d.height], [100, 20], 'the stored bytes decode at the new size')
      t.ok(row.updated_at >= logo.updated_at, 'the update time does not go back')
      const events = await app.db.selectFrom('audit_events').select('action').where('action', '=', 'logo.update').execute()
      t.equal(events.length, 2, 'each saved change audited')

      const missing = await client.get(`/logos/${uuid()}/edit`)
      t.equal(missing.statusCode, 404, `GET /logos/${uuid()}/edit answers 404`)
      t.equal((await client.get('/logos/not-a-uuid/edit')).statusCode, 404, 'GET /logos/not-a-uuid/edit answers 404')
    })

    t.test('Delete: confirmation with the name and the accounts using it, then gone from every account', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      const logo = await addLogo(client, 'Umbrella')
      const other = await addLogo(client, 'Hooli')
      await addAccount(app, logo.id)
      await addAccount(app, logo.id)
      await addAccount(app, other.id)
      const page = await client.get('/logos')
      t.match(page.body, /Umbrella<\/th>\s*<td>[^<]*<span class="muted">\(246 x 52\)<\/span><\/td>\s*<td class="num">2<\/td>/, 'the table counts its accounts')

      const confirm = await client.get(`/logos/${logo.uuid}/delete`)
      t.equal(confirm.statusCode, 200, `GET /logos/${logo.uuid}/delete answers 200`)
      t.match(confirm.body, /<!doctype html>/, 'a page without htmx')
      t.match(confirm.body, /Delete the logo <strong>Umbrella<\/strong>\?/, `the answer to GET /logos/${logo.uuid}/delete shows /Delete the logo <strong>Umbrella<\\/strong>\\?/`)
      t.match(confirm.body, /used by <strong>2 accounts<\/strong>/, `the answer to GET /logos/${logo.uuid}/delete shows /used by <strong>2 accounts<\\/strong>/`)
      t.match(confirm.body, /<button type="submit" class="danger">Delete<\/button>/, `the answer to GET /logos/${logo.uuid}/delete shows /<button type="submit" class="danger">Delete<\\/button>/`)
      const plane = await client.get(`/logos/${other.uuid}/delete`, HTMX)
      t.match(plane.body, /^<aside class="plane"/, 'a plane with htmx')
      t.match(plane.body, /used by <strong>1 account<\/strong>/, `the answer to GET /logos/${other.uuid}/delete shows /used by <strong>1 account<\\/strong>/`)

      const res = await client.post(`/logos/${logo.uuid}/delete`)
      t.equal(res.statusCode, 303, `POST /logos/${logo.uuid}/delete answers 303`)
      t.equal(flashOf(await client.get('/logos')), 'Logo deleted successfully', 'flashOf(client.get(\'/logos\')) is \'Logo deleted successfully\'')
      const accounts = await app.db.selectFrom('accounts').select(['id', 'logo_id']).orderBy('id').execute()
      t.same(accounts.map((a) => a.logo_id), [null, null, other.id], 'taken off the accounts that used it, and only those')
      t.same((await allLogos(app)).map((l) => l.name), ['Hooli'], 'only the other logo is left')
      t.equal((await client.get(`/logos/${logo.uuid}/logo.png`)).statusCode, 404, `GET /logos/${logo.uuid}/logo.png answers 404`)

      const htmxDelete = await client.post(`/logos/${other.uuid}/delete`, {}, HTMX)
      t.equal(htmxDelete.statusCode, 200, `POST /logos/${other.uuid}/delete answers 200`)
      t.equal(htmxDelete.headers['hx-trigger'], 'logos-changed', 'htmxDelete.headers[\'hx-trigger\'] is \'logos-changed\'')
      t.match(htmxDelete.body, /data-plane-done>Logo deleted successfully</, `the answer to POST /logos/${other.uuid}/delete shows /data-plane-done>Logo deleted successfully</`)
      t.equal((await allLogos(app)).length, 0, 'no logo is left')
      const events = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'logo.delete').execute()
      t.equal(events.length, 2, 'both deletions audited')
      t.match(JSON.parse(events.find((e) => e.target_id === logo.uuid)!.fields), { accounts: 2 }, 'the audit counts the accounts that used the logo')
    })

    t.test('the database itself takes a deleted logo off its accounts (ON DELETE SET NULL)', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      const logo = await addLogo(client, 'Direct')
      const account = await addAccount(app, logo.id)
      await app.db.deleteFrom('logos').where('id', '=', logo.id).execute()
      const row = await app.db.selectFrom('accounts').select('logo_id').where('id', '=', account.id).executeTakeFirstOrThrow()
      t.equal(row.logo_id, null, 'deleting a logo clears the accounts\' logo_id')
    })

    t.test('CSRF: a form post without the token is refused and stores nothing', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      const { payload, contentType } = multipart({ name: 'No token' }, { data: GOOD })
      const res = await app.inject({ method: 'POST', url: '/logos', payload, headers: { ...client.headers(), 'content-type': contentType } })
      t.equal(res.statusCode, 403, 'POST /logos answers 403')
      const wrong = await postForm(client, '/logos', { name: 'Wrong token', _csrf: 'x'.repeat(43) }, { data: GOOD })
      t.equal(wrong.statusCode, 403, 'a wrong CSRF token is refused')
      t.equal((await allLogos(app)).length, 0, 'no logo stored')
    })

    t.test('non-Administrators get 403 on the pages and the API', async (t) => {
      const { app, logo, client } = await buildAdminAndUser(t, dialect)
      for (const url of ['/logos', '/logos/new', `/logos/${logo.uuid}/edit`, `/logos/${logo.uuid}/delete`]) {
        t.equal((await client.get(url)).statusCode, 403, `GET ${url}`)
      }
      t.equal((await postForm(client, '/logos', { name: 'Nope' }, { data: GOOD })).statusCode, 403, 'POST /logos')
      t.equal((await postForm(client, `/logos/${logo.uuid}/edit`, { name: 'Nope' }, null)).statusCode, 403, 'POST edit')
      t.equal((await client.post(`/logos/${logo.uuid}/delete`)).statusCode, 403, 'POST delete')
      const keys = await apiKeysFor(client)
      for (const [method, url] of [['GET', '/api/mssp/logos'], ['GET', `/api/mssp/logos/${logo.uuid}`], ['DELETE', `/api/mssp/logos/${logo.uuid}`], ['GET', `/mssp/logos/${logo.uuid}/logo.png`], ['GET', `/mssp/logos/${logo.uuid}/logo.base64`]] as const) {
        const res = await app.inject({ method, url, headers: { 'x-apikeys': keys } })
        t.equal(res.statusCode, 403, `${method} ${url}`)
        t.match(res.json(), { statusCode: 403, error: 'Forbidden' }, 'the refusal is a JSON 403 Forbidden')
      }
      const post = await apiForm(app, 'POST', '/mssp/logos', keys, { name: 'Nope' }, { data: GOOD })
      t.equal(post.statusCode, 403, 'API POST')
      const rows = await allLogos(app)
      t.same(rows.map((l) => l.name), ['Shared'], 'nothing changed')
      const page = await client.get('/accounts')
      t.notMatch(page.body, /href="\/logos"/, 'no Logos link in the navigation')
    })

    t.test('logo.png: Administrators any logo; others only a logo on an account assigned to them', async (t) => {
      const { app, logo: shared, client, admin } = await buildAdminAndUser(t, dialect)
      const unassigned = await addLogo(admin, 'Unassigned')
      const elsewhere = await addLogo(admin, 'Elsewhere')
      await addAccount(app, elsewhere.id, 'Not assigned to the user')

      const img = await admin.get(`/logos/${unassigned.uuid}/logo.png`)
      t.equal(img.statusCode, 200, 'an Administrator may fetch an unassigned logo')
      t.equal(img.headers['content-type'], 'image/png', 'the image is served as PNG')
      t.equal(img.headers['x-content-type-options'], 'nosniff', 'the browser is told not to sniff')
      t.match(img.headers['cache-control'], /^private/, 'the image is cached privately only')
      t.ok(img.rawPayload.equals(Buffer.from(unassigned.png)), 'the stored bytes')
      const etag = img.headers.etag as string
      t.ok(etag, 'the image has an ETag')
      const again = await admin.get(`/logos/${unassigned.uuid}/logo.png`, { 'if-none-match': etag })
      t.equal(again.statusCode, 304, 'revalidated by its ETag')

      const mine = await client.get(`/logos/${shared.uuid}/logo.png`)
      t.equal(mine.statusCode, 200, 'a user may fetch the logo of an account assigned to them')
      t.equal(mine.headers['content-type'], 'image/png', 'the assigned account\'s logo is served as PNG')
      t.equal(mine.headers['x-content-type-options'], 'nosniff', 'with nosniff')
      const notFound = await client.get(`/logos/${uuid()}/logo.png`)
      t.equal(notFound.statusCode, 404, `GET /logos/${uuid()}/logo.png answers 404`)
      for (const logo of [unassigned, elsewhere]) {
        const res = await client.get(`/logos/${logo.uuid}/logo.png`)
        t.equal(res.statusCode, 404, `${logo.name}: 404, as if missing`)
        t.equal(res.body, notFound.body, 'the same answer as a missing logo')
      }
      t.equal((await client.get('/logos/nonsense/logo.png')).statusCode, 404, 'GET /logos/nonsense/logo.png answers 404')

      const anonymous = await app.inject({ url: `/logos/${shared.uuid}/logo.png` })
      t.equal(anonymous.statusCode, 303, 'signed out: to the Log in page')
      t.match(anonymous.headers.location, /^\/login/, `GET /logos/${shared.uuid}/logo.png redirects to /^\\/login/`)
    })

    t.test('the API: shapes, create, list, details, rename, replace, files, delete, errors', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      const keys = await apiKeysFor(client)

      const created = await apiForm(app, 'POST', '/mssp/logos', keys, { name: 'API Logo' }, { data: GOOD, filename: 'api.png' })
      t.equal(created.statusCode, 200, created.body)
      const { uuid: logoUuid } = created.json() as { uuid: string }
      t.same(Object.keys(created.json()), ['uuid'], 'the create answers only the uuid')
      t.match(logoUuid, /^[0-9a-f-]{36}$/, 'the uuid is a uuid')
      const viaPrefix = await apiForm(app, 'POST', '/api/mssp/logos', keys, { name: 'Second' }, { data: makePng(10, 10), filename: 'second.png' })
      t.equal(viaPrefix.statusCode, 200, 'also under /api')

      const list = await app.inject({ url: '/mssp/logos', headers: { 'x-apikeys': keys } })
      t.equal(list.statusCode, 200, 'GET /mssp/logos answers 200')
      t.same(list.json(), {
        logos: [
          { uuid: logoUuid, container_uuid: PORTAL_CONTAINER_UUID, name: 'API Logo', filename: 'api.png' },
          { uuid: viaPrefix.json().uuid, container_uuid: PORTAL_CONTAINER_UUID, name: 'Second', filename: 'second.png' },
        ],
      }, 'the list holds both logos in the API\'s shape')
      const one = await app.inject({ url: `/api/mssp/logos/${logoUuid}`, headers: { 'x-apikeys': keys } })
      t.same(one.json(), { uuid: logoUuid, container_uuid: PORTAL_CONTAINER_UUID, name: 'API Logo', filename: 'api.png' }, 'one logo by uuid')

      const png = await app.inject({ url: `/mssp/logos/${logoUuid}/logo.png`, headers: { 'x-apikeys': keys } })
      t.equal(png.statusCode, 200, `GET /mssp/logos/${logoUuid}/logo.png answers 200`)
      t.equal(png.headers['content-type'], 'image/png', 'the image is PNG')
      t.equal(png.headers['x-content-type-options'], 'nosniff', 'with nosniff')
      t.same([decodePng(png.rawPayload).width, decodePng(png.rawPayload).height], [246, 52], 'the image is 246 x 52 pixels')
      const b64 = await app.inject({ url: `/mssp/logos/${logoUuid}/logo.base64`, headers: { 'x-apikeys': keys } })
      t.equal(b64.statusCode, 200, `GET /mssp/logos/${logoUuid}/logo.base64 answers 200`)
      t.match(b64.headers['content-type'], /^text\/plain/, 'the base64 form is plain text')
      t.ok(Buffer.from(b64.body, 'base64').equals(png.rawPayload), 'base64 of the same bytes')

      const renamed = await apiForm(app, 'PATCH', `/mssp/logos/${logoUuid}`, keys, { name: 'Renamed' })
      t.equal(renamed.statusCode, 200, renamed.body)
      t.same(renamed.json(), { uuid: logoUuid, container_uuid: PORTAL_CONTAINER_UUID, name: 'Renamed', filename: 'api.png' }, 'the rename answers the logo with its new name')
      const replaced = await apiForm(app, 'PATCH', `/mssp/logos/${logoUuid}`, keys, {}, { data: makePng(50, 50), filename: 'square.png' })
      t.equal(replaced.statusCode, 200, replaced.body)
      t.match(replaced.json(), { name: 'Renamed', filename: 'square.png' }, 'the replacement keeps the name and takes the new file name')
      const row = await app.db.selectFrom('logos').selectAll().where('uuid', '=', logoUuid).executeTakeFirstOrThrow()
      t.same([row.width, row.height], [50, 50], 'the stored size is the new image\'s')

      // Errors: 400 saying what was wrong, nothing stored or changed.
      for (const bad of BAD_FILES) {
        const res = await apiForm(app, 'POST', '/mssp/logos', keys, { name: 'Bad' }, bad.data ? { data: bad.data, filename: bad.filename ?? 'bad.png' } : null)
        t.equal(res.statusCode, 400, `POST ${bad.name}: 400`)
        t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: bad.message }, `POST ${bad.name}: says why`)
      }
      for (const bad of BAD_FILES.slice(0, 8)) {
        const res = await apiForm(app, 'PATCH', `/mssp/logos/${logoUuid}`, keys, {}, { data: bad.data!, filename: bad.filename ?? 'bad.png' })
        t.equal(res.statusCode, 400, `PATCH ${bad.name}: 400`)
        t.match(res.json().message, bad.message, 'the refusal says what was wrong')
      }
      const noName = await apiForm(app, 'POST', '/mssp/logos', keys, {}, { data: GOOD })
      t.equal(noName.statusCode, 400, 'a form without a name is refused')
      t.match(noName.json().message, /Enter a name/, 'the refusal asks for a name')
      const empty = await apiForm(app, 'PATCH', `/mssp/logos/${logoUuid}`, keys, {})
      t.equal(empty.statusCode, 400, 'an empty PATCH is refused')
      t.match(empty.json().message, /name.*logo/, 'the refusal asks for a name or a logo')
      const json = await app.inject({ method: 'POST', url: '/mssp/logos', headers: { 'x-apikeys': keys }, payload: { name: 'JSON' } })
      t.equal(json.statusCode, 400, 'POST /mssp/logos answers 400')
      t.match(json.json().message, /multipart\/form-data/, 'a JSON body is refused asking for multipart/form-data')
      t.equal((await allLogos(app)).length, 2, 'nothing stored by refused calls')
      t.match(await app.db.selectFrom('logos').select(['name', 'filename']).where('uuid', '=', logoUuid).executeTakeFirst(), { name: 'Renamed', filename: 'square.png' }, 'the refused calls left the logo as it was')

      for (const url of [`/mssp/logos/${uuid()}`, '/mssp/logos/nope', `/mssp/logos/${uuid()}/logo.png`, `/mssp/logos/${uuid()}/logo.base64`]) {
        const res = await app.inject({ url, headers: { 'x-apikeys': keys } })
        t.equal(res.statusCode, 404, url)
        t.match(res.json(), { statusCode: 404, error: 'Not Found' }, 'an unknown logo is a JSON 404')
      }

      // Delete takes it off every account.
      const account = await addAccount(app, row.id)
      const del = await app.inject({ method: 'DELETE', url: `/mssp/logos/${logoUuid}`, headers: { 'x-apikeys': keys } })
      t.equal(del.statusCode, 200, `DELETE /mssp/logos/${logoUuid} answers 200`)
      t.same(del.json(), {}, 'the delete answers an empty object')
      const after = await app.db.selectFrom('accounts').select('logo_id').where('id', '=', account.id).executeTakeFirstOrThrow()
      t.equal(after.logo_id, null, 'the deleted logo is taken off the account')
      t.equal((await app.inject({ url: `/mssp/logos/${logoUuid}`, headers: { 'x-apikeys': keys } })).statusCode, 404, `GET /mssp/logos/${logoUuid} answers 404`)
      t.equal((await app.inject({ method: 'DELETE', url: `/mssp/logos/${logoUuid}`, headers: { 'x-apikeys': keys } })).statusCode, 404, `DELETE /mssp/logos/${logoUuid} answers 404`)

      const actions = (await app.db.selectFrom('audit_events').select('action').where('action', 'like', 'logo.%').execute()).map((e) => e.action).sort()
      t.same(actions, ['logo.create', 'logo.create', 'logo.delete', 'logo.update', 'logo.update'], 'two creates, two updates and a delete are audited')

      // A browser session may call the API too, with the CSRF header.
      const { payload, contentType } = multipart({ name: 'From the browser' }, { data: GOOD })
      const session = await app.inject({ method: 'POST', url: '/api/mssp/logos', payload, headers: { ...client.headers(), 'content-type': contentType, 'x-csrf-token': client.csrf } })
      t.equal(session.statusCode, 200, 'POST /api/mssp/logos answers 200')
    })

    t.test('the demo logos are valid, within the limits, and one is light on transparent', async (t) => {
      const { app, user } = await signedIn(t, dialect)
      const ids = await seedDemoLogos(app.db, user.id)
      t.ok(ids.length >= 3 && ids.length <= 4, 'three or four demo logos are seeded')
      const rows = await app.db.selectFrom('logos').selectAll().where('id', 'in', ids).execute()
      t.equal(rows.length, ids.length, 'each seeded logo is stored')
      let lightOnTransparent = false
      for (const row of rows) {
        const d = decodePng(Buffer.from(row.png))
        t.ok(d.width <= 246 && d.height <= 52, `${row.name}: ${d.width} x ${d.height}`)
        t.same([d.width, d.height], [row.width, row.height], 'each seeded logo\'s stored size is its PNG\'s')
        let transparent = 0
        let light = 0
        for (let i = 0; i < d.data.length; i += 4) {
          if (d.data[i + 3] === 0) transparent++
          else if (d.data[i]! > 230 && d.data[i + 1]! > 230 && d.data[i + 2]! > 230) light++
        }
        if (transparent > 0 && light > 0) lightOnTransparent = true
      }
      t.ok(lightOnTransparent, 'one light logo on a transparent background')
    })
  })

  /** An Administrator with a logo on an account assigned to a Standard user, signed in as that user. */
  async function buildAdminAndUser(t: Test, d: typeof dialect) {
    const { app, client: admin } = await signedIn(t, d)
    const logo = await addLogo(admin, 'Shared')
    const account = await addAccount(app, logo.id, 'Assigned to the user')
    const user = await createUser(app, { role: 32 })
    await app.db.insertInto('user_accounts').values({ user_id: user.id, account_id: account.id, created_at: Date.now() }).execute()
    const client = new Client(app)
    await client.signIn(user.username)
    await client.get('/accounts')
    return { app, logo, client, admin }
  }
}
