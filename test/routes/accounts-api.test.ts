import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { PNG } from 'pngjs'
import { type Tap, BASIC, STANDARD, ADMINISTRATOR, Client, assign, buildTestApp, createAccount, createUser, dialects } from '../helper.ts'
import { ACCOUNT_FILTERS, PORTAL_CONTAINER_UUID } from '../../src/areas/accounts/api-routes.ts'
import { iterateApiAccounts } from '../../src/areas/accounts/repository.ts'
import type { User } from '../../src/db/schema.ts'
import { uuid } from '../../src/lib/tokens.ts'

const DAY = 86_400_000

/** A small PNG (the logos table stores the bytes). */
function smallPng(): Buffer {
  const png = new PNG({ width: 4, height: 2 })
  png.data.fill(200)
  return PNG.sync.write(png)
}

async function insertLogo(app: FastifyInstance, name: string) {
  const now = Date.now()
  return app.db
    .insertInto('logos')
    .values({ uuid: uuid(), name, filename: `${name}.png`, png: smallPng(), width: 4, height: 2, created_by: null, created_at: now, updated_at: now })
    .returningAll()
    .executeTakeFirstOrThrow()
}

/** API keys for a user, generated through the session endpoint as a user would. */
async function keysFor(app: FastifyInstance, user: User): Promise<{ client: Client; header: Record<string, string> }> {
  const client = new Client(app)
  await client.signIn(user.username)
  return { client, header: await client.apiKeys() }
}

function names(res: LightMyRequestResponse): string[] {
  return (res.json() as { accounts: Array<{ container_name: string }> }).accounts.map((a) => a.container_name).sort()
}

for (const dialect of dialects) {
  t.test(`${dialect}: the accounts API`, async (t) => {
    async function setup(t: Tap) {
      const { app } = await buildTestApp(t, dialect, { API_RATE_LIMIT_PER_MINUTE: '100000' })
      const admin = await createUser(app, { role: ADMINISTRATOR })
      const basic = await createUser(app, { role: BASIC })
      const logo = await insertLogo(app, 'Blue')
      const now = Date.now()
      const acme = await createAccount(app, {
        container_name: 'Acme Logistics', site_id: 'EU-100', region: 'EU', licensed_apps: 'vm,was', notes: 'Quarterly review in March',
        licensed_assets: 95, licensed_assets_limit: 100, license_expiration_date: now + 100 * DAY, sso_username: 'acme-sso', lms_customer_id: 'LMS-1', logo_id: logo.id,
      })
      const bluefin = await createAccount(app, {
        container_name: 'Bluefin Capital', custom_name: 'Bluefin (managed)', site_id: 'US-200', region: 'US', licensed_apps: 'cs',
        licensed_assets: 10, licensed_assets_limit: 100, license_expiration_date: now + 10 * DAY, lms_customer_id: 'LMS-2',
      })
      const cedar = await createAccount(app, {
        container_name: 'Cedar Health', site_id: 'US-300', region: 'US', licensed_apps: 'vm', licensed_assets: 0, licensed_assets_limit: 0, license_expiration_date: now - 2 * DAY,
      })
      await assign(app, basic.id, [acme.id])
      const adminKeys = await keysFor(app, admin)
      const basicKeys = await keysFor(app, basic)
      return { app, admin, basic, logo, acme, bluefin, cedar, A: adminKeys.header, B: basicKeys.header, adminClient: adminKeys.client, basicClient: basicKeys.client }
    }

    t.test('visibility: a Basic user with 1 of 3 accounts sees only it; the others answer 404 like a missing uuid', async (t) => {
      const { app, A, B, acme, bluefin, cedar } = await setup(t)
      t.same(names(await app.inject({ url: '/api/mssp/accounts', headers: A })), ['Acme Logistics', 'Bluefin Capital', 'Cedar Health'], 'an Administrator\'s key lists all three accounts')
      const mine = await app.inject({ url: '/api/mssp/accounts', headers: B })
      t.equal(mine.statusCode, 200, 'a Basic user\'s key may list accounts')
      t.same(names(mine), ['Acme Logistics'], 'a Basic user sees only the account assigned to them')
      t.same(names(await app.inject({ url: '/mssp/accounts?w=bluefin', headers: B })), [], 'a search does not reach unassigned accounts (unprefixed path)')
      t.same(names(await app.inject({ url: '/api/mssp/accounts?f=region:eq:US', headers: B })), [], 'a filter does not reach a Basic user\'s unassigned accounts')

      const single = await app.inject({ url: `/api/mssp/accounts/${acme.uuid}`, headers: B })
      t.equal(single.statusCode, 200, `GET /api/mssp/accounts/${acme.uuid} answers 200`)
      t.match(single.json(), { uuid: acme.uuid, container_name: 'Acme Logistics', licensed_apps: ['vm', 'was'], license_utilization: 95, domains: [] }, 'one account by uuid has its fields in the API\'s shape')
      const missing = await app.inject({ url: `/api/mssp/accounts/${uuid()}`, headers: B })
      t.equal(missing.statusCode, 404, `GET /api/mssp/accounts/${uuid()} answers 404`)
      for (const other of [bluefin, cedar]) {
        for (const url of [`/api/mssp/accounts/${other.uuid}`, `/api/mssp/accounts/childContainers/${other.uuid}/history`]) {
          const res = await app.inject({ url, headers: B })
          t.equal(res.statusCode, 404, url)
          t.same(res.json(), missing.json(), 'the same answer as a missing uuid')
        }
        t.equal((await app.inject({ url: `/api/mssp/accounts/${other.uuid}`, headers: A })).statusCode, 200, 'the Administrator sees it')
      }
      t.equal((await app.inject({ url: '/api/mssp/accounts/not-a-uuid', headers: B })).statusCode, 404, 'GET /api/mssp/accounts/not-a-uuid answers 404')
      t.equal((await app.inject({ url: `/api/mssp/accounts/childContainers/${acme.uuid}/history`, headers: B })).statusCode, 200, `GET /api/mssp/accounts/childContainers/${acme.uuid}/history answers 200`)
      t.equal((await app.inject({ url: '/api/mssp/accounts' })).statusCode, 401, 'GET /api/mssp/accounts answers 401')
    })

    t.test('every filter and operator (table-driven), each one GET /filters describes', async (t) => {
      const { app, A, logo } = await setup(t)
      const ACME = 'Acme Logistics'
      const BLUE = 'Bluefin Capital'
      const CEDAR = 'Cedar Health'
      const cases: Array<[string, string[]]> = [
        ['container_name:eq:acme logistics', [ACME]],
        ['container_name:neq:ACME LOGISTICS', [BLUE, CEDAR]],
        ['container_name:match:health', [CEDAR]],
        ['container_name:nmatch:cap', [ACME, CEDAR]],
        ['custom_name:eq:', [ACME, CEDAR]],
        ['custom_name:neq:', [BLUE]],
        ['custom_name:match:managed', [BLUE]],
        ['custom_name:nmatch:managed', [ACME, CEDAR]],
        ['site_id:eq:eu-100', [ACME]],
        ['site_id:neq:eu-100', [BLUE, CEDAR]],
        ['site_id:match:us-', [BLUE, CEDAR]],
        ['site_id:nmatch:us-', [ACME]],
        ['region:eq:US', [BLUE, CEDAR]],
        ['region:neq:us', [ACME]],
        ['region:match:e', [ACME]],
        ['region:nmatch:e', [BLUE, CEDAR]],
        ['notes:eq:quarterly review in march', [ACME]],
        ['notes:neq:', [ACME]],
        ['notes:match:quarterly', [ACME]],
        ['notes:nmatch:quarterly', [BLUE, CEDAR]],
        ['licensed_apps:eq:vm', [ACME, CEDAR]],
        ['licensed_apps:neq:vm', [BLUE]],
        ['licensed_apps:match:WAS', [ACME]],
        ['licensed_apps:nmatch:cs', [ACME, CEDAR]],
        ['licensed_assets:eq:95', [ACME]],
        ['licensed_assets:neq:95', [BLUE, CEDAR]],
        ['licensed_assets:lt:10', [CEDAR]],
        ['licensed_assets:gt:10', [ACME]],
        ['licensed_assets:lte:10', [BLUE, CEDAR]],
        ['licensed_assets:gte:10', [ACME, BLUE]],
        ['licensed_assets_limit:eq:0', [CEDAR]],
        ['licensed_assets_limit:neq:0', [ACME, BLUE]],
        ['licensed_assets_limit:lt:100', [CEDAR]],
        ['licensed_assets_limit:gt:0', [ACME, BLUE]],
        ['licensed_assets_limit:lte:100', [ACME, BLUE, CEDAR]],
        ['licensed_assets_limit:gte:101', []],
        ['license_utilization:eq:10', [BLUE]],
        ['license_utilization:neq:10', [ACME, CEDAR]],
        ['license_utilization:lt:10', [CEDAR]],
        ['license_utilization:gt:10.5', [ACME]],
        ['license_utilization:lte:10', [BLUE, CEDAR]],
        ['license_utilization:gte:95', [ACME]],
        ['days_to_expiration:eq:10', [BLUE]],
        ['days_to_expiration:lt:0', [CEDAR]],
        ['days_to_expiration:gt:30', [ACME]],
        ['days_to_expiration:lte:30', [BLUE, CEDAR]],
        ['days_to_expiration:gte:0', [ACME, BLUE]],
        ['days_to_expiration:neq:10', [ACME, CEDAR]],
        [`logo_uuid:eq:${logo.uuid}`, [ACME]],
        [`logo_uuid:neq:${logo.uuid}`, [BLUE, CEDAR]],
        ['sso_username:eq:acme-sso', [ACME]],
        ['sso_username:neq:acme-sso', [BLUE, CEDAR]],
        ['sso_username:match:sso', [ACME]],
        ['sso_username:nmatch:sso', [BLUE, CEDAR]],
        ['lms_customer_id:eq:lms-2', [BLUE]],
        ['lms_customer_id:neq:lms-2', [ACME, CEDAR]],
        ['lms_customer_id:match:lms', [ACME, BLUE]],
        ['lms_customer_id:nmatch:lms', [CEDAR]],
      ]
      for (const [filter, expected] of cases) {
        const res = await app.inject({ url: `/api/mssp/accounts?f=${encodeURIComponent(filter)}`, headers: A })
        t.equal(res.statusCode, 200, filter)
        t.same(names(res), expected, filter)
      }
      // One source of truth: GET /filters lists exactly what the list accepts, and every pair is covered above.
      const described = await app.inject({ url: '/api/filters/mssp/accounts', headers: A })
      t.equal(described.statusCode, 200, 'GET /api/filters/mssp/accounts answers 200')
      const body = described.json() as { wildcard_fields: string[]; filters: Array<{ name: string; readable_name: string; operators: string[]; control: { type: string; regex?: string; list?: string[] } }> }
      t.same(body.filters.map((f) => f.name), ACCOUNT_FILTERS.map((f) => f.name), 'GET /filters lists the filters in the order the list accepts them')
      t.same(body.filters.map((f) => f.name).sort(), ['container_name', 'custom_name', 'days_to_expiration', 'license_utilization', 'licensed_apps', 'licensed_assets', 'licensed_assets_limit', 'lms_customer_id', 'logo_uuid', 'notes', 'region', 'site_id', 'sso_username'], 'the accounts list has exactly these thirteen filters')
      for (const f of body.filters) {
        t.ok(f.readable_name && ['entry', 'dropdown', 'datefield'].includes(f.control.type), f.name)
        for (const op of f.operators) t.ok(cases.some(([c]) => c.startsWith(`${f.name}:${op}:`)), `${f.name}:${op} is tested`)
        const bad = ['eq', 'neq', 'match', 'nmatch', 'lt', 'gt', 'lte', 'gte'].filter((op) => !f.operators.includes(op))
        for (const op of bad) {
          const res = await app.inject({ url: `/api/mssp/accounts?f=${f.name}:${op}:1`, headers: A })
          t.equal(res.statusCode, 400, `${f.name}:${op} refused`)
          t.match(res.json().message, `does not allow the operator "${op}"`, `${f.name}:${op} is refused naming the operator`)
        }
      }
      t.same(body.filters.find((f) => f.name === 'licensed_apps')!.control, { type: 'dropdown', list: ['vm', 'was', 'cs'] }, 'licensed_apps is a dropdown of vm, was and cs')
      t.ok(body.wildcard_fields.includes('container_name') && body.wildcard_fields.includes('region'), 'the wildcard search covers container_name and region')
    })

    t.test('bad filters and parameters are 400s that say what was wrong', async (t) => {
      const { app, A } = await setup(t)
      const cases: Array<[string, string | RegExp]> = [
        ['f=colour:eq:red', 'Unknown filter field "colour"'],
        ['f=region:lt:5', 'does not allow the operator "lt"'],
        ['f=licensed_assets:eq:many', 'is not a valid value for the filter field "licensed_assets"'],
        ['f=licensed_apps:eq:nessus', 'is not a value of the filter field "licensed_apps"'],
        ['f=logo_uuid:eq:nope', 'logo_uuid'],
        ['f=region', 'must look like field:operator:value'],
        ['ft=xor', /ft/],
        ['wf=colour&w=x', /wf/],
        ['limit=0', /limit/],
        ['limit=10001', /limit/],
        ['offset=-1', /offset/],
      ]
      for (const [qs, message] of cases) {
        const res = await app.inject({ url: `/api/mssp/accounts?${qs}`, headers: A })
        t.equal(res.statusCode, 400, qs)
        t.match(res.json(), { statusCode: 400, error: 'Bad Request', message }, qs)
      }
      const two = await app.inject({ url: '/api/mssp/accounts?f=colour:eq:red&f=region:eq:EU&f=region:gt:1', headers: A })
      t.equal(two.json().errors.length, 2, 'every bad filter is reported')
      t.same(two.json().errors.map((e: { path: string }) => e.path), ['/f/0', '/f/2'], 'each bad filter is reported by its position')
    })

    t.test('ft=or, wildcard search (indexed, or over chosen fields) and paging', async (t) => {
      const { app, A, acme, bluefin, cedar } = await setup(t)
      const get = async (qs: string) => names(await app.inject({ url: `/api/mssp/accounts?${qs}`, headers: A }))
      t.same(await get('f=region:eq:EU&f=licensed_apps:eq:cs&ft=or'), ['Acme Logistics', 'Bluefin Capital'], 'ft=or: accounts matching either filter')
      t.same(await get('f=region:eq:EU&f=licensed_apps:eq:cs&ft=and'), [], 'ft=and: no account is both in EU and licensed for cs')
      t.same(await get('f=region:eq:EU&f=licensed_apps:eq:cs'), [], 'and by default')
      t.same(await get('w=acme'), ['Acme Logistics'], 'w=acme finds Acme by name')
      t.same(await get('w=MANAGED'), ['Bluefin Capital'], 'custom name')
      t.same(await get('w=web%20application'), ['Acme Logistics'], 'licensed app names')
      t.same(await get('w=quarterly&wf=container_name,notes'), ['Acme Logistics'], 'default fields: the indexed search')
      t.same(await get('w=eu&wf=region'), ['Acme Logistics'], 'a field outside the search text: match')
      t.same(await get('w=us&wf=region&wf=sso_username'), ['Bluefin Capital', 'Cedar Health'], 'repeated wf keys')
      t.same(await get('w=sso&wf=region,sso_username'), ['Acme Logistics'], 'OR over the fields')
      t.same(await get('w=container&wf=licensed_apps,region'), ['Bluefin Capital'], 'licensed apps by name in the match path')
      t.same(await get('w=us&wf=region&f=licensed_apps:eq:vm'), ['Cedar Health'], 'wildcard and filters together')
      t.same(await get('w=zzz'), [], 'a wildcard matching nothing lists nothing')

      const order = (res: LightMyRequestResponse) => (res.json() as { accounts: Array<{ uuid: string }> }).accounts.map((a) => a.uuid)
      t.same(order(await app.inject({ url: '/api/mssp/accounts?limit=2', headers: A })), [acme.uuid, bluefin.uuid], 'creation order')
      t.same(order(await app.inject({ url: '/api/mssp/accounts?limit=2&offset=2', headers: A })), [cedar.uuid], 'limit=2&offset=2: only the third account')
      t.same(order(await app.inject({ url: '/api/mssp/accounts?limit=2&offset=1', headers: A })), [bluefin.uuid, cedar.uuid], 'limit=2&offset=1: the second and third accounts')
      t.same(order(await app.inject({ url: '/api/mssp/accounts?limit=5&offset=3', headers: A })), [], 'an offset past the end lists nothing')
      t.same(order(await app.inject({ url: '/api/mssp/accounts?offset=1', headers: A })), [bluefin.uuid, cedar.uuid], 'offset alone')
    })

    t.test('the streamed list walks batches without gaps or repeats', async (t) => {
      const { app, admin } = await setup(t)
      for (let i = 0; i < 7; i++) await createAccount(app, { container_name: `Batch ${i}` })
      const all = await app.db.selectFrom('accounts').select('uuid').orderBy('id').execute()
      const read = async (offset: number, limit?: number) => {
        const out: string[] = []
        for await (const row of iterateApiAccounts(app.db, app.dialect, admin, {}, { offset, limit, batch: 3 })) out.push(row.uuid)
        return out
      }
      t.same(await read(0), all.map((a) => a.uuid), 'batches of 3 from offset 0 give every account once, in order')
      t.same(await read(2, 5), all.slice(2, 7).map((a) => a.uuid), 'offset 2, limit 5 across batch edges')
      t.same(await read(1, 3), all.slice(1, 4).map((a) => a.uuid), 'offset 1, limit 3: exactly one batch')
      t.same(await read(9), all.slice(9).map((a) => a.uuid), 'offset 9: the last account only')
      const res = await app.inject({ url: '/api/mssp/accounts', headers: (await keysFor(app, admin)).header })
      t.match(res.headers['content-type'], /application\/json/, 'the streamed list is JSON')
      t.equal(res.json().accounts.length, 10, 'the streamed list over HTTP holds all ten accounts')
    })

    t.test('non-administrators get 403 on the administrator endpoints', async (t) => {
      const { app, B, A, basic, admin, acme } = await setup(t)
      const standard = await createUser(app, { role: STANDARD })
      const calls: Array<{ method: 'POST' | 'PATCH' | 'PUT'; url: string; payload: object }> = [
        { method: 'POST', url: '/api/mssp/accounts', payload: { container_name: 'Nope' } },
        { method: 'PATCH', url: `/api/mssp/accounts/${acme.uuid}`, payload: { notes: 'x' } },
        { method: 'PUT', url: `/api/mssp/accounts/childContainers/${basic.uuid}`, payload: { account_uuids: [acme.uuid] } },
        { method: 'PUT', url: '/api/mssp/accounts/logos', payload: { logo_uuid: null, account_uuids: [acme.uuid] } },
      ]
      for (const call of calls) {
        const res = await app.inject({ ...call, headers: B })
        t.equal(res.statusCode, 403, `${call.method} ${call.url}`)
        t.match(res.json(), { statusCode: 403, error: 'Forbidden' }, 'the refusal is a JSON 403 Forbidden')
      }
      t.equal((await app.inject({ url: `/api/mssp/accounts/childContainers/${basic.uuid}`, headers: B })).statusCode, 200, 'the user themself')
      t.equal((await app.inject({ url: `/api/mssp/accounts/childContainers/${standard.uuid}`, headers: B })).statusCode, 403, 'another user')
      t.equal((await app.inject({ url: `/api/mssp/accounts/childContainers/${admin.uuid}`, headers: B })).statusCode, 403, 'a Basic user cannot read an Administrator\'s accounts')
      t.equal((await app.inject({ url: `/api/mssp/accounts/childContainers/${standard.uuid}`, headers: A })).statusCode, 200, 'an Administrator')
      t.equal((await app.inject({ url: `/api/mssp/accounts/childContainers/${uuid()}`, headers: A })).statusCode, 404, 'an unknown user uuid answers 404')
      const after = await app.db.selectFrom('accounts').select(['notes', 'logo_id']).where('id', '=', acme.id).executeTakeFirstOrThrow()
      t.equal(after.notes, 'Quarterly review in March', 'nothing changed')
      t.equal((await app.db.selectFrom('accounts').select('id').execute()).length, 3, 'the refused create added no account')
    })

    t.test('create (JSON and plain forms), patch in one go, custom name history', async (t) => {
      const { app, A, admin, basic, B } = await setup(t)
      const created = await app.inject({
        method: 'POST', url: '/api/mssp/accounts', headers: A,
        payload: { container_name: ' Delta Freight ', custom_name: 'Delta', region: 'APAC', licensed_apps: ['was', 'vm'], licensed_assets: 40, licensed_assets_limit: 50, license_expiration_date: Date.UTC(2030, 0, 31), domains: ['Delta.example'], instance_url: 'https://delta.example.com/', contact_email: 'sec@delta.example' },
      })
      t.equal(created.statusCode, 200, 'an Administrator creates an account by JSON')
      const delta = created.json()
      t.match(delta, { container_name: 'Delta Freight', custom_name: 'Delta', region: 'APAC', licensed_apps: ['vm', 'was'], licensed_assets: 40, licensed_assets_limit: 50, license_utilization: 80, license_expiration_date: Date.UTC(2030, 0, 31), domains: ['delta.example'], instance_url: 'https://delta.example.com', logo_uuid: null }, 'the created account is trimmed, apps sorted, domains lower-cased, utilization computed')
      t.match(delta.uuid, /^[0-9a-f-]{36}$/, 'the new account has a uuid')

      const form = await app.inject({
        method: 'POST', url: '/mssp/accounts', headers: { ...A, 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'container_name=Echo+Retail&licensed_apps=vm&licensed_apps=cs&domains=echo.example,echo.test&licensed_assets=&license_expiration_date=&instance_url=',
      })
      t.equal(form.statusCode, 200, form.body)
      t.match(form.json(), { container_name: 'Echo Retail', licensed_apps: ['vm', 'cs'], domains: ['echo.example', 'echo.test'], licensed_assets: 0, license_expiration_date: null, instance_url: null }, 'a form create: repeated apps, comma-separated domains, empty numbers and dates')
      const commaApps = await app.inject({ method: 'POST', url: '/api/mssp/accounts', headers: { ...A, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'container_name=Foxtrot&licensed_apps=vm,was' })
      t.same(commaApps.json().licensed_apps, ['vm', 'was'], 'comma-separated licensed apps in a form are split')

      const bad = await app.inject({ method: 'POST', url: '/api/mssp/accounts', headers: A, payload: { container_name: '', licensed_apps: ['nessus'], contact_email: 'nope' } })
      t.equal(bad.statusCode, 400, 'an empty name, unknown app and bad e-mail are refused')
      const paths = (bad.json().errors as Array<{ path: string }>).map((e) => e.path)
      for (const p of ['/container_name', '/licensed_apps/0', '/contact_email']) t.ok(paths.includes(p), `says ${p} was wrong`)
      const before = await app.db.selectFrom('accounts').select('id').execute()

      // One PATCH: the custom name (with history) and other fields together.
      const patched = await app.inject({ method: 'PATCH', url: `/api/mssp/accounts/${delta.uuid}`, headers: A, payload: { custom_name: 'Delta Group', notes: 'Line 1\r\nLine 2', licensed_assets: 50, region: null, licensed_apps: 'cs' } })
      t.equal(patched.statusCode, 200, patched.body)
      t.match(patched.json(), { custom_name: 'Delta Group', notes: 'Line 1\nLine 2', licensed_assets: 50, license_utilization: 100, region: null, licensed_apps: ['cs'], container_name: 'Delta Freight', domains: ['delta.example'] }, 'one PATCH changes the custom name and the other fields together')
      t.ok(patched.json().modified >= delta.modified, 'the modified time does not go back')

      // Invalid: nothing is half-saved.
      const invalid = await app.inject({ method: 'PATCH', url: `/api/mssp/accounts/${delta.uuid}`, headers: A, payload: { custom_name: 'Should not stick', licensed_assets: -1 } })
      t.equal(invalid.statusCode, 400, 'a negative licensed_assets is refused')
      t.match(invalid.json().message, /licensed_assets/, 'the refusal names licensed_assets')
      const empty = await app.inject({ method: 'PATCH', url: `/api/mssp/accounts/${delta.uuid}`, headers: A, payload: {} })
      t.equal(empty.statusCode, 400, 'an empty PATCH is refused')
      t.match(empty.json().message, 'Nothing to change', 'the refusal says there is nothing to change')
      t.equal((await app.inject({ method: 'PATCH', url: `/api/mssp/accounts/${uuid()}`, headers: A, payload: { notes: 'x' } })).statusCode, 404, 'PATCH of an unknown uuid answers 404')
      const current = await app.inject({ url: `/api/mssp/accounts/${delta.uuid}`, headers: A })
      t.equal(current.json().custom_name, 'Delta Group', 'the refused PATCH did not half-save the custom name')
      t.equal(current.json().licensed_assets, 50, 'the refused PATCH did not change licensed_assets')

      // Form PATCH, then clearing the custom name.
      const formPatch = await app.inject({ method: 'PATCH', url: `/api/mssp/accounts/${delta.uuid}`, headers: { ...A, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'custom_name=Delta+Holdings&domains=a.example,b.example' })
      t.equal(formPatch.statusCode, 200, formPatch.body)
      t.same(formPatch.json().domains, ['a.example', 'b.example'], 'a form PATCH splits comma-separated domains')
      t.equal((await app.inject({ method: 'PATCH', url: `/api/mssp/accounts/${delta.uuid}`, headers: A, payload: { custom_name: null } })).json().custom_name, null, 'custom_name: null clears the custom name')
      t.equal((await app.inject({ method: 'PATCH', url: `/api/mssp/accounts/${delta.uuid}`, headers: A, payload: { notes: 'same name' } })).statusCode, 200, 'a PATCH without a name change succeeds')

      const history = await app.inject({ url: `/api/mssp/accounts/childContainers/${delta.uuid}/history`, headers: A })
      t.equal(history.statusCode, 200, 'the custom name history can be read')
      const entries = history.json().history as Array<Record<string, unknown>>
      t.equal(entries.length, 3, 'one entry per custom name change, none for other fields')
      t.same(entries.map((e) => [e.old_value, e.updated_value]).sort(), [['Delta', 'Delta Group'], ['Delta Group', 'Delta Holdings'], ['Delta Holdings', null]].sort(), 'the history holds each custom name change, old and new')
      for (const e of entries) t.match(e, { uuid: String, child_container_uuid: delta.uuid, user_name: admin.username, created: Number }, 'each history entry names the account and who changed it')
      t.equal((await app.db.selectFrom('accounts').select('id').execute()).length, before.length, 'a failed create writes nothing')

      const audits = await app.db.selectFrom('audit_events').select(['action', 'target_id']).where('target_id', '=', delta.uuid).execute()
      t.ok(audits.some((a) => a.action === 'account.create'), 'the create is audited')
      t.ok(audits.filter((a) => a.action === 'account.update').length >= 4, 'each PATCH that changed something is audited')
      void basic
      void B
    })

    t.test('childContainers: replace a user\'s accounts in one go; the next page request sees them', async (t) => {
      const { app, A, basic, admin, acme, bluefin, cedar, basicClient, adminClient } = await setup(t)
      const got = await app.inject({ url: `/api/mssp/accounts/childContainers/${basic.uuid}`, headers: A })
      t.same(got.json(), { parent_uuid: PORTAL_CONTAINER_UUID, account_uuids: [acme.uuid] }, 'a Basic user\'s accounts are read by the user\'s uuid')

      const page = await basicClient.get('/accounts')
      t.match(page.body, 'Acme Logistics', 'before the change the Basic user sees Acme')
      t.notMatch(page.body, 'Bluefin Capital', 'before the change the Basic user does not see Bluefin')

      const put = await app.inject({ method: 'PUT', url: `/api/mssp/accounts/childContainers/${basic.uuid}`, headers: A, payload: { account_uuids: [bluefin.uuid, cedar.uuid, bluefin.uuid] } })
      t.equal(put.statusCode, 200, put.body)
      t.same(put.json().account_uuids.sort(), [bluefin.uuid, cedar.uuid].sort(), 'the replacement is stored without the repeated uuid')
      const next = await basicClient.get('/accounts')
      t.match(next.body, 'Bluefin Capital', 'effective on the very next request')
      t.match(next.body, 'Cedar Health', 'the Basic user now sees Cedar')
      t.notMatch(next.body, 'Acme Logistics', 'the Basic user no longer sees Acme')
      t.equal((await basicClient.get(`/accounts/export.csv`)).body.includes('Acme Logistics'), false, 'the Basic user\'s CSV export no longer holds Acme')

      const unknown = await app.inject({ method: 'PUT', url: `/api/mssp/accounts/childContainers/${basic.uuid}`, headers: A, payload: { account_uuids: [acme.uuid, uuid()] } })
      t.equal(unknown.statusCode, 404, 'an unknown account uuid in the list answers 404')
      t.match(unknown.json().message, 'does not exist', 'the refusal says the account does not exist')
      const still = await app.inject({ url: `/api/mssp/accounts/childContainers/${basic.uuid}`, headers: A })
      t.same(still.json().account_uuids.sort(), [bluefin.uuid, cedar.uuid].sort(), 'nothing changed')

      const toAdmin = await app.inject({ method: 'PUT', url: `/api/mssp/accounts/childContainers/${admin.uuid}`, headers: A, payload: { account_uuids: [acme.uuid] } })
      t.equal(toAdmin.statusCode, 409, 'accounts cannot be assigned to an Administrator')
      t.match(toAdmin.json().message, 'Administrators', 'the refusal says Administrators see every account')
      t.equal((await app.inject({ method: 'PUT', url: `/api/mssp/accounts/childContainers/${uuid()}`, headers: A, payload: { account_uuids: [] } })).statusCode, 404, 'an unknown user uuid answers 404')
      t.equal((await app.inject({ method: 'PUT', url: `/api/mssp/accounts/childContainers/${basic.uuid}`, headers: A, payload: { account_uuids: ['nope'] } })).statusCode, 400, 'a malformed account uuid answers 400')

      // A browser session posting a plain form: repeated keys and the _csrf field.
      await adminClient.get('/accounts')
      const form = await app.inject({
        method: 'PUT', url: `/api/mssp/accounts/childContainers/${basic.uuid}`,
        headers: { ...adminClient.headers(), 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams([['_csrf', adminClient.csrf], ['account_uuids', acme.uuid], ['account_uuids', cedar.uuid]]).toString(),
      })
      t.equal(form.statusCode, 200, form.body)
      t.same(form.json().account_uuids.sort(), [acme.uuid, cedar.uuid].sort(), 'a browser form with repeated keys replaces the accounts')
      const noCsrf = await app.inject({ method: 'PUT', url: `/api/mssp/accounts/childContainers/${basic.uuid}`, headers: { ...adminClient.headers(), 'content-type': 'application/x-www-form-urlencoded' }, payload: `account_uuids=${bluefin.uuid}` })
      t.equal(noCsrf.statusCode, 403, 'a cookie call needs the CSRF token')

      const cleared = await app.inject({ method: 'PUT', url: `/api/mssp/accounts/childContainers/${basic.uuid}`, headers: A, payload: { account_uuids: [] } })
      t.same(cleared.json().account_uuids, [], 'an empty list clears the user\'s accounts')
      t.match((await basicClient.get('/accounts')).body, 'No accounts are assigned to you yet.', 'the Basic user then has no accounts')

      const audits = await app.db.selectFrom('audit_events').select(['action', 'target_id', 'fields']).where('action', '=', 'user.assign_accounts').execute()
      t.equal(audits.length, 3, 'each replacement audited, the refused ones not')
      t.ok(audits.every((a) => a.target_id === basic.uuid), 'every audit names the user whose accounts changed')
    })

    t.test('logos: hundreds of accounts at once via the API; null removes; unknown logo or account is 404', async (t) => {
      const { app, A, logo, acme } = await setup(t)
      const many = []
      for (let i = 0; i < 250; i++) many.push((await createAccount(app, { container_name: `Bulk ${i}` })).uuid)
      const other = await insertLogo(app, 'Red')
      const res = await app.inject({ method: 'PUT', url: '/api/mssp/accounts/logos', headers: A, payload: { logo_uuid: other.uuid, account_uuids: [...many, acme.uuid] } })
      t.equal(res.statusCode, 200, res.body)
      t.same(res.json(), { updated: 251 }, '251 accounts get the logo in one call')
      const withLogo = await app.inject({ url: `/api/mssp/accounts?f=logo_uuid:eq:${other.uuid}`, headers: A })
      t.equal(withLogo.json().accounts.length, 251, 'a logo_uuid filter finds all 251')
      t.equal((await app.inject({ url: `/api/mssp/accounts/${acme.uuid}`, headers: A })).json().logo_uuid, other.uuid, 'Acme has the new logo')

      const unknownLogo = await app.inject({ method: 'PUT', url: '/api/mssp/accounts/logos', headers: A, payload: { logo_uuid: uuid(), account_uuids: [acme.uuid] } })
      t.equal(unknownLogo.statusCode, 404, 'an unknown logo answers 404')
      const unknownAccount = await app.inject({ method: 'PUT', url: '/api/mssp/accounts/logos', headers: A, payload: { logo_uuid: logo.uuid, account_uuids: [acme.uuid, uuid()] } })
      t.equal(unknownAccount.statusCode, 404, 'an unknown account among known ones answers 404')
      t.equal((await app.inject({ url: `/api/mssp/accounts/${acme.uuid}`, headers: A })).json().logo_uuid, other.uuid, 'nothing changed')
      t.equal((await app.inject({ method: 'PUT', url: '/api/mssp/accounts/logos', headers: A, payload: { logo_uuid: logo.uuid, account_uuids: [] } })).statusCode, 400, 'an empty account list answers 400')

      const removed = await app.inject({ method: 'PUT', url: '/api/mssp/accounts/logos', headers: A, payload: { logo_uuid: null, account_uuids: many.slice(0, 100) } })
      t.same(removed.json(), { updated: 100 }, 'logo_uuid: null removes the logo from 100 accounts')
      t.equal((await app.inject({ url: `/api/mssp/accounts?f=logo_uuid:eq:${other.uuid}`, headers: A })).json().accounts.length, 151, '151 accounts keep the logo')

      const form = await app.inject({
        method: 'PUT', url: '/mssp/accounts/logos', headers: { ...A, 'content-type': 'application/x-www-form-urlencoded' },
        payload: `logo_uuid=${logo.uuid}&account_uuids=${many.slice(0, 3).join(',')}`,
      })
      t.same(form.json(), { updated: 3 }, 'a plain form with a comma-separated list')
      const formNone = await app.inject({ method: 'PUT', url: '/mssp/accounts/logos', headers: { ...A, 'content-type': 'application/x-www-form-urlencoded' }, payload: `logo_uuid=&account_uuids=${many[0]}&account_uuids=${many[1]}` })
      t.same(formNone.json(), { updated: 2 }, 'an empty logo_uuid removes; repeated keys')
      t.equal((await app.inject({ url: `/api/mssp/accounts/${many[0]}`, headers: A })).json().logo_uuid, null, 'an empty logo_uuid in a form removed the logo')
    })
  })
}
