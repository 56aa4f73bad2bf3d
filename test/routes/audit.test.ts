import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { parse } from 'csv-parse/sync'
import { type Tap, ADMINISTRATOR, NON_ADMIN_ROLES, HTMX, Client, buildTestApp, createUser, dialects } from '../helper.ts'
import type { AuditEvent, User } from '../../src/db/schema.ts'
import { uuid } from '../../src/lib/tokens.ts'
import { audit } from '../../src/areas/audit/service.ts'
import { insertAuditEvent, seedDemoAuditHistory } from '../../src/areas/audit/repository.ts'
import { crudOf, describeEvent } from '../../src/areas/audit/routes.ts'
import { parseInstant } from '../../src/areas/audit/api-routes.ts'

// Two dialects, each with 10,000 events for the count and 2,345 for the export.
t.setTimeout(240_000)

/** 2024-05-01 12:00:00 UTC: the tests' events are in May 2024, the sign-ins of the test clients now. */
const T0 = Date.UTC(2024, 4, 1, 12)
const HOUR = 3_600_000
const DAY = 24 * HOUR
const MAY = 'from=2024-05-01&to=2024-05-31'

async function appFor(t: Tap, dialect: (typeof dialects)[number]): Promise<FastifyInstance> {
  const { app } = await buildTestApp(t, dialect)
  return app
}

type EventInput = Partial<Omit<AuditEvent, 'fields'>> & { action: string; created_at: number; fields?: Record<string, unknown> }

async function addEvent(app: FastifyInstance, e: EventInput): Promise<AuditEvent> {
  const row: AuditEvent = {
    id: uuid(),
    actor_user_id: null,
    actor_name: null,
    assisting_user_id: null,
    assisting_name: null,
    outcome: 'success',
    target_type: null,
    target_id: null,
    target_name: null,
    ip: null,
    ...e,
    fields: JSON.stringify(e.fields ?? {}),
  }
  await insertAuditEvent(app.db, row)
  return row
}

async function addMany(app: FastifyInstance, rows: EventInput[]): Promise<void> {
  const full = rows.map((e) => ({ id: uuid(), actor_user_id: null, actor_name: null, assisting_user_id: null, assisting_name: null, outcome: 'success' as const, target_type: null, target_id: null, target_name: null, ip: null, ...e, fields: JSON.stringify(e.fields ?? {}) }))
  for (let i = 0; i < full.length; i += 500) await app.db.insertInto('audit_events').values(full.slice(i, i + 500)).execute()
}

const decode = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&')
const text = (html: string) => decode(html.replace(/<br>/g, ' ').replace(/<wbr>/g, '').replace(/<[^>]+>/g, '').replace(/\s+/g, ' ').trim())

/** The results table's body rows, as the text of their cells. */
function tableRows(html: string): string[][] {
  const body = /<tbody>([\s\S]*?)<\/tbody>/.exec(html)?.[1]
  if (body === undefined) throw new Error('no results table')
  return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) => [...m[1]!.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((c) => text(c[1]!)))
}

/** Each row's Action code (the second line of the Action cell). */
function actions(html: string): string[] {
  return tableRows(html).filter((r) => r.length === 8).map((r) => r[3]!.split(' ').at(-1)!)
}

function link(html: string, rel: 'prev' | 'next'): string | undefined {
  const m = new RegExp(`<a href="([^"]+)"[^>]*rel="${rel}"`).exec(html)
  return m ? decode(m[1]!) : undefined
}

function csvRows(res: LightMyRequestResponse): string[][] {
  return parse(res.body, { bom: true }) as string[][]
}

async function keysFor(app: FastifyInstance, user: User): Promise<Record<string, string>> {
  const client = new Client(app)
  await client.signIn(user.username)
  return client.apiKeys()
}

type ApiEvent = {
  id: string
  action: string
  crud: string
  is_failure: boolean
  received: string
  description: string
  actor: { id: string | null; name: string | null }
  is_anonymous: boolean
  target: { id: string | null; name: string | null; type: string | null }
  fields: Array<{ key: string; value: string | null }>
}

for (const dialect of dialects) {
  t.test(`${dialect}: the Audit Log`, async (t) => {
    async function setup(t: Tap) {
      const app = await appFor(t, dialect)
      const admin = await createUser(app, { role: ADMINISTRATOR, username: 'root.admin@example.com' })
      const alice = await createUser(app, { role: 32, username: 'alice@example.com' })
      const bob = await createUser(app, { role: 16, username: 'bob@example.com' })
      const client = new Client(app)
      await client.signIn(admin.username)
      return { app, admin, alice, bob, client }
    }

    /** Five events in May 2024, of every kind the page shows. */
    async function story(app: FastifyInstance, users: { admin: User; alice: User; bob: User }) {
      const { admin, alice, bob } = users
      const acme = uuid()
      const events = {
        aliceIn: await addEvent(app, { created_at: T0, action: 'auth.sign_in', actor_user_id: alice.id, actor_name: alice.username, target_type: 'user', target_id: alice.uuid, target_name: alice.username, ip: '203.0.113.5', fields: { remember_me: false, method: 'password' } }),
        assisted: await addEvent(app, { created_at: T0 + HOUR, action: 'account.update', actor_user_id: bob.id, actor_name: bob.username, assisting_user_id: admin.id, assisting_name: admin.username, target_type: 'account', target_id: acme, target_name: 'Acme Logistics', ip: '198.51.100.7', fields: { changed: 'notes', notes_changed: true } }),
        ghost: await addEvent(app, { created_at: T0 + 2 * HOUR, action: 'auth.sign_in', outcome: 'failure', ip: '192.0.2.66', fields: { username: 'ghost@example.com', reason: 'unknown user' } }),
        aliceWrong: await addEvent(app, { created_at: T0 + DAY, action: 'auth.sign_in', outcome: 'failure', actor_user_id: alice.id, actor_name: alice.username, target_type: 'user', target_id: alice.uuid, target_name: alice.username, ip: '203.0.113.5', fields: { reason: 'wrong password' } }),
        created: await addEvent(app, { created_at: T0 + 10 * DAY, action: 'user.create', actor_user_id: admin.id, actor_name: admin.username, target_type: 'user', target_id: bob.uuid, target_name: bob.username, ip: '198.51.100.7', fields: { role: 'Basic', accounts: 2 } }),
      }
      return { acme, events }
    }

    t.test('the page: labels, columns, newest first, fields as key=value', async (t) => {
      const { app, client, ...users } = await setup(t)
      await story(app, users)
      const res = await client.get(`/audit-log?${MAY}`)
      t.equal(res.statusCode, 200, `GET /audit-log?${MAY} answers 200`)
      t.match(res.body, /<title>Audit Log · MSSP Portal<\/title>/, `the answer to GET /audit-log?${MAY} shows /<title>Audit Log · MSSP Portal<\\/title>/`)
      t.match(res.body, /<h1>Audit Log<\/h1>/, `the answer to GET /audit-log?${MAY} shows /<h1>Audit Log<\\/h1>/`)
      for (const label of ['Actor', 'Action', 'Target', 'Outcome', 'From (UTC)', 'To (UTC)']) t.match(res.body, new RegExp(`<label for="filter-[a-z]+">${label.replace(/[()]/g, '\\$&')}</label>`), `the ${label} filter`)
      t.match(res.body, /<button type="submit" class="primary">Apply Filters<\/button>/, `the answer to GET /audit-log?${MAY} shows /<button type="submit" class="primary">Apply Filte…/`)
      t.match(res.body, /<form class="toolbar audit-filters" method="get" action="\/audit-log"/, 'a plain GET form without JavaScript')
      t.match(res.body, /<a id="audit-export" class="button" href="\/audit-log\/export.csv\?from=2024-05-01&amp;to=2024-05-31" download>Export CSV<\/a>/, `the answer to GET /audit-log?${MAY} shows /<a id="audit-export" class="button" href="\\/audit…/`)
      const headers = [...res.body.matchAll(/<th scope="col">([^<]+)<\/th>/g)].map((m) => m[1])
      t.same(headers, ['Time (UTC)', 'Actor', 'Assisting Administrator', 'Action', 'Outcome', 'Target', 'IP Address', 'Details'], 'headers is the expected list')
      t.match(res.body, /5 events match the filters/, `the answer to GET /audit-log?${MAY} shows /5 events match the filters/`)

      const rows = tableRows(res.body)
      t.same(actions(res.body), ['user.create', 'auth.sign_in', 'auth.sign_in', 'account.update', 'auth.sign_in'], 'newest first')
      t.same(rows[0], ['2024-05-11 12:00:00', 'root.admin@example.com', '', 'User created user.create', 'Success', 'bob@example.com user', '198.51.100.7', 'role=Basic accounts=2'], 'rows[0] is the expected list')
      t.same(rows[1], ['2024-05-02 12:00:00', 'alice@example.com', '', 'Sign in auth.sign_in', 'Failure', 'alice@example.com user', '203.0.113.5', 'reason="wrong password"'], 'rows[1] is the expected list')
      t.same(rows[2], ['2024-05-01 14:00:00', 'Anonymous', '', 'Sign in auth.sign_in', 'Failure', '', '192.0.2.66', 'username=ghost@example.com reason="unknown user"'], 'rows[2] is the expected list')
      t.same(rows[3], ['2024-05-01 13:00:00', 'bob@example.com', 'root.admin@example.com', 'Account updated account.update', 'Success', 'Acme Logistics account', '198.51.100.7', 'changed=notes notes_changed=true'], 'rows[3] is the expected list')
      t.same(rows[4], ['2024-05-01 12:00:00', 'alice@example.com', '', 'Sign in auth.sign_in', 'Success', 'alice@example.com user', '203.0.113.5', 'remember_me=false method=password'], 'rows[4] is the expected list')
      t.match(res.body, /<time datetime="2024-05-01T12:00:00.000Z">2024-05-01<br>12:00:00<\/time>/, `the answer to GET /audit-log?${MAY} shows /<time datetime="2024-05-01T12:00:00.000Z">2024-05…/`)

      // Without filters the test client's own sign-in (now) comes first.
      const all = await client.get('/audit-log')
      t.equal(actions(all.body)[0], 'auth.sign_in', 'actions(all.body)[0] is \'auth.sign_in\'')
      t.equal(tableRows(all.body)[0]![1], 'root.admin@example.com', 'tableRows(all.body)[0][1] is \'root.admin@example.com\'')
      t.equal(actions(all.body).length, 6, 'actions(all.body).length is 6')
      t.match(all.body, /6 events<\/p>/, 'the answer to GET /audit-log shows /6 events<\\/p>/')
    })

    t.test('filters: actor, action, target, outcome, dates; lenient with bad values', async (t) => {
      const { app, client, ...users } = await setup(t)
      const { acme } = await story(app, users)
      const get = async (qs: string) => actions((await client.get(`/audit-log?${MAY}&${qs}`)).body)

      t.same(await get('actor=alice'), ['auth.sign_in', 'auth.sign_in'], 'part of a username')
      t.same(await get('actor=ALICE%40EXAMPLE.COM'), ['auth.sign_in', 'auth.sign_in'], 'a full username, any case')
      t.same(await get('actor=example.com'), ['user.create', 'auth.sign_in', 'account.update', 'auth.sign_in'], 'anonymous events have no actor')
      t.same(await get('actor=nobody'), [], 'get(\'actor=nobody\') is []')
      t.same(await get('actor=%25'), [], 'LIKE wildcards are plain characters')
      t.same(await get('actor=_'), [], 'get(\'actor=_\') is []')

      t.same(await get('action=auth.sign_in'), ['auth.sign_in', 'auth.sign_in', 'auth.sign_in'], 'get(\'action=auth.sign_in\') is [\'auth.sign_in\', \'auth.sign_in\', \'auth.sign_in\']')
      t.same(await get('action=account.update'), ['account.update'], 'get(\'action=account.update\') is [\'account.update\']')
      t.same(await get('action=auth'), [], 'the action is matched exactly')

      t.same(await get('target=acme'), ['account.update'], 'part of the target name, any case')
      t.same(await get(`target=${acme}`), ['account.update'], 'the target id')
      t.same(await get(`target=${acme.toUpperCase()}`), ['account.update'], 'the target id, any case')
      t.same(await get(`target=${acme.slice(0, 8)}`), [], 'an id matches whole')
      t.same(await get('target=bob%40example'), ['user.create'], 'get(\'target=bob%40example\') is [\'user.create\']')

      t.same(await get('outcome=failure'), ['auth.sign_in', 'auth.sign_in'], 'get(\'outcome=failure\') is [\'auth.sign_in\', \'auth.sign_in\']')
      t.same(await get('outcome=success'), ['user.create', 'account.update', 'auth.sign_in'], 'get(\'outcome=success\') is [\'user.create\', \'account.update\', \'auth.sign_in\']')

      const dates = async (qs: string) => actions((await client.get(`/audit-log?${qs}`)).body)
      t.same(await dates('from=2024-05-01&to=2024-05-01'), ['auth.sign_in', 'account.update', 'auth.sign_in'], 'one day, both ends included')
      t.same(await dates('from=2024-05-02&to=2024-05-10'), ['auth.sign_in'], 'dates(\'from=2024-05-02&to=2024-05-10\') is [\'auth.sign_in\']')
      t.same(await dates('from=2024-05-11&to=2024-05-11'), ['user.create'], 'dates(\'from=2024-05-11&to=2024-05-11\') is [\'user.create\']')
      t.same(await dates('to=2024-04-30'), [], 'dates(\'to=2024-04-30\') is []')
      t.same(await dates('from=2024-05-02&to=2024-05-31&outcome=failure&actor=alice&action=auth.sign_in'), ['auth.sign_in'], 'filters combine')

      // Bad values are ignored, as in a URL kept from long ago.
      t.same(await dates('to=2024-05-31&from=2024-02-30&outcome=maybe&before=garbage'), ['user.create', 'auth.sign_in', 'auth.sign_in', 'account.update', 'auth.sign_in'], 'dates(…) is the expected list')

      // The form keeps what was asked.
      const page = await client.get(`/audit-log?actor=alice&action=auth.sign_in&target=acme&outcome=failure&from=2024-05-01&to=2024-05-31`)
      t.match(page.body, /name="actor" value="alice"/, 'the answer to GET /audit-log?actor=alice&action=auth.sign_in&target=acme&outcome=failure&from=2024-05-01&to=2024-05-31 shows /name="actor" value="alice"/')
      t.match(page.body, /<option value="auth.sign_in" selected>Sign in<\/option>/, 'the answer to GET /audit-log?actor=alice&action=auth.sign_in&target=acme&outcome=failure&from=2024-05-01&to=2024-05-31 shows /<option value="auth.sign_in" selected>Sign in<\\/option>/')
      t.match(page.body, /name="target" value="acme"/, 'the answer to GET /audit-log?actor=alice&action=auth.sign_in&target=acme&outcome=failure&from=2024-05-01&to=2024-05-31 shows /name="target" value="acme"/')
      t.match(page.body, /<option value="failure" selected>Failure<\/option>/, 'the answer to GET /audit-log?actor=alice&action=auth.sign_in&target=acme&outcome=failure&from=2024-05-01&to=2024-05-31 shows /<option value="failure" selected>Failure<\\/option>/')
      t.match(page.body, /name="from" value="2024-05-01"/, 'the answer to GET /audit-log?actor=alice&action=auth.sign_in&target=acme&outcome=failure&from=2024-05-01&to=2024-05-31 shows /name="from" value="2024-05-01"/')
      t.match(page.body, /name="to" value="2024-05-31"/, 'the answer to GET /audit-log?actor=alice&action=auth.sign_in&target=acme&outcome=failure&from=2024-05-01&to=2024-05-31 shows /name="to" value="2024-05-31"/')
      t.match(page.body, /No events match these filters\. <a href="\/audit-log">Clear the filters<\/a>/, 'the empty state of a search')

      // The Action select lists the actions found in the log, by name.
      const options = [...page.body.matchAll(/<option value="([a-z_.]+)"[^>]*>([^<]+)<\/option>/g)].filter((m) => m[1]!.includes('.')).map((m) => [m[1], m[2]])
      t.same(options, [['account.update', 'Account updated'], ['auth.sign_in', 'Sign in'], ['user.create', 'User created']], 'options is the expected list')
      const unknown = await client.get('/audit-log?action=custom.thing_done')
      t.match(unknown.body, /<option value="custom.thing_done" selected>Custom: thing done<\/option>/, 'an action asked for stays selectable')
    })

    t.test('htmx gets the results fragment and the export link for its filters', async (t) => {
      const { app, client, ...users } = await setup(t)
      await story(app, users)
      const res = await client.get(`/audit-log?${MAY}&outcome=failure`, HTMX)
      t.equal(res.statusCode, 200, `GET /audit-log?${MAY}&outcome=failure answers 200`)
      t.equal(res.headers.vary, 'HX-Request', 'res.headers.vary is \'HX-Request\'')
      t.equal(res.headers['hx-push-url'], '/audit-log?outcome=failure&from=2024-05-01&to=2024-05-31', 'the address without empty fields')
      const emptyFields = await client.get('/audit-log?actor=&action=&target=&outcome=&from=&to=&before=1_x', HTMX)
      t.equal(emptyFields.headers['hx-push-url'], '/audit-log?before=1_x', 'emptyFields.headers[\'hx-push-url\'] is \'/audit-log?before=1_x\'')
      t.equal((await client.get('/audit-log')).headers['hx-push-url'], undefined, 'pages push nothing')
      t.notMatch(res.body, /<html|<form/, 'no page around it')
      t.match(res.body, /^<div id="audit-results">/, `the answer to GET /audit-log?${MAY}&outcome=failure shows /^<div id="audit-results">/`)
      t.same(actions(res.body), ['auth.sign_in', 'auth.sign_in'], 'actions(res.body) is [\'auth.sign_in\', \'auth.sign_in\']')
      t.match(res.body, /<a id="audit-export" class="button" href="\/audit-log\/export.csv\?outcome=failure&amp;from=2024-05-01&amp;to=2024-05-31" download hx-swap-oob="true">Export CSV<\/a>/, `the answer to GET /audit-log?${MAY}&outcome=failure shows /<a id="audit-export" class="button" href="\\/audit…/`)
      const full = await client.get(`/audit-log?${MAY}`)
      t.notMatch(full.body, /hx-swap-oob/, 'the full page has one export link, in place')
      t.match(full.body, /hx-get="\/audit-log" hx-target="#audit-results" hx-swap="outerHTML" hx-push-url="true"/, `the answer to GET /audit-log?${MAY} shows /hx-get="\\/audit-log" hx-target="#audit-results" h…/`)
    })

    t.test('paging: 50 a page, newest first, older and newer by keyset, ties in time included', async (t) => {
      const { app, client } = await setup(t)
      // 130 events, two at each instant (the id orders them), plus two failures.
      const rows: EventInput[] = []
      for (let i = 0; i < 130; i++) rows.push({ created_at: T0 + Math.floor(i / 2) * 60_000, action: 'account.update', target_name: `Account ${String(i).padStart(3, '0')}`, target_type: 'account', target_id: uuid() })
      await addMany(app, rows)
      const expected = (await app.db.selectFrom('audit_events').select(['target_name']).where('action', '=', 'account.update').orderBy('created_at', 'desc').orderBy('id', 'desc').execute()).map((r) => r.target_name)
      const targets = (html: string) => tableRows(html).map((r) => r[5]!.replace(/ account$/, ''))

      const first = await client.get(`/audit-log?${MAY}`)
      t.match(first.body, /130 events match the filters/, `the answer to GET /audit-log?${MAY} shows /130 events match the filters/`)
      t.same(targets(first.body), expected.slice(0, 50), 'targets(first.body) is expected.slice(0, 50)')
      t.equal(link(first.body, 'prev'), undefined, 'no newer page')
      t.notMatch(first.body, /« Newest/, `the answer to GET /audit-log?${MAY} does not show /« Newest/`)
      const older = link(first.body, 'next')!
      t.match(older, /^\/audit-log\?from=2024-05-01&to=2024-05-31&before=\d+_[0-9a-f-]{36}$/, 'the filters stay in the link')

      const second = await client.get(older)
      t.same(targets(second.body), expected.slice(50, 100), 'targets(second.body) is expected.slice(50, 100)')
      t.match(second.body, /« Newest/, `the answer to GET ${older} shows /« Newest/`)
      const third = await client.get(link(second.body, 'next')!)
      t.same(targets(third.body), expected.slice(100, 130), 'targets(third.body) is expected.slice(100, 130)')
      t.equal(link(third.body, 'next'), undefined, 'the oldest page')
      const back = await client.get(link(third.body, 'prev')!)
      t.same(targets(back.body), expected.slice(50, 100), 'Newer returns to the page before')
      const top = await client.get(link(back.body, 'prev')!)
      t.same(targets(top.body), expected.slice(0, 50), 'targets(top.body) is expected.slice(0, 50)')
      t.equal(link(top.body, 'prev'), undefined, 'link(top.body, \'prev\') is undefined')

      // htmx paging links swap the results.
      t.match(first.body, /<a href="[^"]+" hx-get="[^"]+" hx-target="#audit-results" hx-swap="outerHTML" hx-push-url="true" rel="next">Older ›<\/a>/, `the answer to GET /audit-log?${MAY} shows /<a href="[^"]+" hx-get="[^"]+" hx-target="#audit-…/`)

      // A newer page with less than a page left shows the newest page.
      const partial = await client.get(`/audit-log?${MAY}&after=${T0 + 62 * 60_000}_${'f'.repeat(8)}-0000-0000-0000-000000000000`)
      t.same(targets(partial.body), expected.slice(0, 50), 'targets(partial.body) is expected.slice(0, 50)')
      const partialHtmx = await client.get(`/audit-log?${MAY}&after=${T0 + 62 * 60_000}_${'f'.repeat(8)}-0000-0000-0000-000000000000`, HTMX)
      t.equal(partialHtmx.headers['hx-push-url'], `/audit-log?${MAY}`, 'the newest page has no cursor in its address')
      t.equal((await client.get(older, HTMX)).headers['hx-push-url'], older, `(client.get(older, HTMX)).headers['hx-push-url'] is ${older}`)
      // A page beyond the oldest event.
      const beyond = await client.get(`/audit-log?${MAY}&before=1000_x`)
      t.same(tableRows(beyond.body), [['No older events. Go to the newest events']], 'tableRows(beyond.body) is [[\'No older events. Go to the newest events\']]')
    })

    t.test('counts stop at 10,000; the empty log', async (t) => {
      const { app, client } = await setup(t)
      await app.db.deleteFrom('audit_events').execute()
      const empty = await client.get('/audit-log')
      t.same(tableRows(empty.body), [['No events yet. Sign-ins and changes appear here as they happen.']], 'tableRows(empty.body) is the expected list')
      t.match(empty.body, /0 events<\/p>/, 'the answer to GET /audit-log shows /0 events<\\/p>/')
      t.match(empty.body, /<option value="">All actions<\/option>\s*<\/select>/, 'no actions to choose')
      await addMany(app, Array.from({ length: 10_005 }, (_, i) => ({ created_at: T0 + i, action: i % 2 ? 'auth.sign_in' : 'auth.sign_out' })))
      const many = await client.get('/audit-log')
      t.match(many.body, /More than 10,000 events<\/p>/, 'the answer to GET /audit-log shows /More than 10,000 events<\\/p>/')
      t.equal(tableRows(many.body).length, 50, 'tableRows(many.body).length is 50')
      const half = await client.get('/audit-log?action=auth.sign_out')
      t.match(half.body, /5,003 events match the filters/, 'the answer to GET /audit-log?action=auth.sign_out shows /5,003 events match the filters/')
    })

    t.test('export: the filtered events, every one, formulas neutralised, itself recorded', async (t) => {
      const { app, client, admin, ...users } = await setup(t)
      const { acme } = await story(app, { admin, ...users })
      await addEvent(app, { created_at: T0 + 3 * HOUR, action: 'account.update', actor_user_id: admin.id, actor_name: admin.username, target_type: 'account', target_id: acme, target_name: '=HYPERLINK("http://evil.example","click")', fields: { notes: '+1 555' } })
      const res = await client.get(`/audit-log/export.csv?${MAY}`)
      t.equal(res.statusCode, 200, `GET /audit-log/export.csv?${MAY} answers 200`)
      t.match(res.headers['content-type'], /^text\/csv; charset=utf-8/, 'res.headers[\'content-type\'] matches /^text\\/csv; charset=utf-8/')
      t.equal(res.headers['content-disposition'], `attachment; filename="audit-log-${new Date().toISOString().slice(0, 10)}.csv"`, 'res.headers[\'content-disposition\'] is the expected value')
      t.equal(res.headers['cache-control'], 'no-store', 'res.headers[\'cache-control\'] is \'no-store\'')
      t.ok(res.body.startsWith('\uFEFF'), 'a BOM for Excel')
      t.match(res.body, /\r\n/, 'CRLF line ends')
      const rows = csvRows(res)
      t.same(rows[0], ['Time (UTC)', 'Actor', 'Assisting Administrator', 'Action', 'Outcome', 'Target Type', 'Target ID', 'Target Name', 'IP Address', 'Fields', 'Description', 'Event ID'], 'rows[0] is the expected list')
      t.equal(rows.length, 1 + 6, 'the six events of May, not the sign-in of today')
      const byAction = rows.slice(1).map((r) => r[3])
      t.same(byAction, ['user.create', 'auth.sign_in', 'account.update', 'auth.sign_in', 'account.update', 'auth.sign_in'], 'newest first')
      const formula = Object.fromEntries(rows[0]!.map((h, i) => [h, rows[3]![i]]))
      t.equal(formula['Target Name'], `'=HYPERLINK("http://evil.example","click")`, 'a formula neutralised')
      t.equal(formula['Time (UTC)'], '2024-05-01T15:00:00.000Z', 'formula[\'Time (UTC)\'] is \'2024-05-01T15:00:00.000Z\'')
      t.equal(formula.Fields, 'notes="+1 555"', 'fields as key=value, quoted where a value has spaces')
      const assisted = Object.fromEntries(rows[0]!.map((h, i) => [h, rows[5]![i]]))
      t.match(assisted, {
        Actor: 'bob@example.com', 'Assisting Administrator': 'root.admin@example.com', Action: 'account.update', Outcome: 'success', 'Target Type': 'account', 'Target ID': acme,
        'Target Name': 'Acme Logistics', 'IP Address': '198.51.100.7', Fields: 'changed=notes notes_changed=true',
        Description: 'bob@example.com updated the account Acme Logistics (notes). Assisted by root.admin@example.com.',
      }, 'assisted matches the expected fields')
      t.match(assisted['Event ID'], /^[0-9a-f-]{36}$/, 'assisted[\'Event ID\'] matches /^[0-9a-f-]{36}$/')
      const ghost = Object.fromEntries(rows[0]!.map((h, i) => [h, rows[4]![i]]))
      t.equal(ghost.Actor, '', 'ghost.Actor is \'\'')
      t.equal(ghost.Description, 'Sign-in failed for ghost@example.com (unknown user).', 'ghost.Description is \'Sign-in failed for ghost@example.com (unknown user).\'')

      t.same(csvRows(await client.get(`/audit-log/export.csv?${MAY}&outcome=failure`)).slice(1).map((r) => r[0]), ['2024-05-02T12:00:00.000Z', '2024-05-01T14:00:00.000Z'], 'the page\'s filters')
      t.same(csvRows(await client.get('/audit-log/export.csv?actor=alice&before=garbage')).slice(1).map((r) => r[3]), ['auth.sign_in', 'auth.sign_in'], 'all pages, not the cursor\'s')

      // Each export is an event of its own, after the rows it exported.
      const recorded = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'audit.export').orderBy('created_at').execute()
      t.equal(recorded.length, 3, 'recorded.length is 3')
      t.match(recorded[0], { actor_user_id: admin.id, actor_name: admin.username, outcome: 'success' }, 'recorded[0] matches the expected fields')
      t.same(JSON.parse(recorded[1]!.fields), { outcome: 'failure', from: '2024-05-01', to: '2024-05-31' }, 'JSON.parse(recorded[1].fields) is { outcome: \'failure\', from: \'2024-05-01\', to: \'2024-05-31\' }')
      const again = csvRows(await client.get('/audit-log/export.csv?action=audit.export'))
      t.equal(again.length, 1 + 3, 'an export does not list itself')
      t.equal(again[1]![10], 'root.admin@example.com exported the audit log (actor=alice).', 'again[1][10] is \'root.admin@example.com exported the audit log (actor=alice).\'')
    })

    t.test('export streams more rows than one batch, each once, in order', async (t) => {
      const { app, client } = await setup(t)
      await addMany(app, Array.from({ length: 2_345 }, (_, i) => ({ created_at: T0 + Math.floor(i / 3), action: 'auth.sign_in', target_name: `t${i}` })))
      const rows = csvRows(await client.get(`/audit-log/export.csv?${MAY}`)).slice(1)
      t.equal(rows.length, 2_345, 'rows.length is 2_345')
      t.equal(new Set(rows.map((r) => r[11])).size, 2_345, 'no event twice')
      const times = rows.map((r) => Date.parse(r[0]!))
      t.ok(times.every((v, i) => i === 0 || v <= times[i - 1]!), 'newest first throughout')
    })

    t.test('Administrators only: the page, the export and the API refuse every other role', async (t) => {
      const { app, client } = await setup(t)
      for (const role of NON_ADMIN_ROLES) {
        const user = await createUser(app, { role })
        const c = new Client(app)
        await c.signIn(user.username)
        t.equal((await c.get('/audit-log')).statusCode, 403, `role ${role}: the page`)
        t.equal((await c.get('/audit-log', HTMX)).statusCode, 403, `role ${role}: the fragment`)
        t.equal((await c.get('/audit-log/export.csv')).statusCode, 403, `role ${role}: the export`)
        const api = await c.get('/api/audit-log/v1/events')
        t.equal(api.statusCode, 403, `role ${role}: the API`)
        t.match(api.json(), { statusCode: 403, error: 'Forbidden' }, 'api.json() matches { statusCode: 403, error: \'Forbidden\' }')
        const keys = await keysFor(app, user)
        t.equal((await app.inject({ url: '/audit-log/v1/events', headers: keys })).statusCode, 403, `role ${role}: the API with keys`)
      }
      const anonymous = await app.inject({ url: '/audit-log' })
      t.equal(anonymous.statusCode, 303, 'GET /audit-log answers 303')
      t.match(anonymous.headers.location, /^\/login\?next=%2Faudit-log/, 'GET /audit-log redirects to /^\\/login\\?next=%2Faudit-log/')
      t.equal((await app.inject({ url: '/audit-log/export.csv' })).statusCode, 303, 'GET /audit-log/export.csv answers 303')
      t.equal((await app.inject({ url: '/api/audit-log/v1/events' })).statusCode, 401, 'GET /api/audit-log/v1/events answers 401')
      t.equal((await client.get('/audit-log')).statusCode, 200, 'the Administrator may')
    })

    t.test('API: the event object', async (t) => {
      const { app, client, admin, ...users } = await setup(t)
      const { acme, events } = await story(app, { admin, ...users })
      const res = await client.get(`/api/audit-log/v1/events?f=date.lt:2024-06-01`)
      t.equal(res.statusCode, 200, 'GET /api/audit-log/v1/events?f=date.lt:2024-06-01 answers 200')
      const list = (res.json() as { events: ApiEvent[] }).events
      t.same(list.map((e) => e.id), [events.created.id, events.aliceWrong.id, events.ghost.id, events.assisted.id, events.aliceIn.id], 'newest first')
      t.same(list[0], {
        id: events.created.id,
        action: 'user.create',
        crud: 'c',
        is_failure: false,
        received: '2024-05-11T12:00:00.000Z',
        description: 'root.admin@example.com created the user bob@example.com (Basic).',
        actor: { id: admin.uuid, name: admin.username },
        is_anonymous: false,
        target: { id: users.bob.uuid, name: 'bob@example.com', type: 'user' },
        fields: [{ key: 'role', value: 'Basic' }, { key: 'accounts', value: '2' }, { key: 'ip', value: '198.51.100.7' }],
      }, 'list[0] is the expected fields')
      t.same(list[2], {
        id: events.ghost.id,
        action: 'auth.sign_in',
        crud: 'r',
        is_failure: true,
        received: '2024-05-01T14:00:00.000Z',
        description: 'Sign-in failed for ghost@example.com (unknown user).',
        actor: { id: null, name: null },
        is_anonymous: true,
        target: { id: null, name: null, type: null },
        fields: [{ key: 'username', value: 'ghost@example.com' }, { key: 'reason', value: 'unknown user' }, { key: 'ip', value: '192.0.2.66' }],
      }, 'list[2] is the expected fields')
      t.match(list[3], { crud: 'u', actor: { name: 'bob@example.com' }, target: { id: acme, type: 'account' }, description: /Assisted by root\.admin@example\.com\.$/ }, 'list[3] matches the expected fields')
      t.same(list[3]!.fields.at(-1), { key: 'assisted_by', value: 'root.admin@example.com' }, 'list[3].fields.at(-1) is { key: \'assisted_by\', value: \'root.admin@example.com\' }')
      t.equal(list[4]!.description, 'alice@example.com signed in (password).', 'list[4].description is \'alice@example.com signed in (password).\'')

      // A deleted user's events keep the name; the id goes.
      await app.db.updateTable('audit_events').set({ actor_user_id: null }).where('id', '=', events.aliceIn.id).execute()
      const kept = (await client.get(`/api/audit-log/v1/events?f=target_id.eq:${users.alice.uuid}&f=is_failure.eq:false`)).json() as { events: ApiEvent[] }
      t.match(kept.events[0], { actor: { id: null, name: 'alice@example.com' }, is_anonymous: false }, 'kept.events[0] matches the expected fields')

      // Tenable's clients call the unprefixed path with keys; browsers get no such page.
      const keys = await keysFor(app, admin)
      const viaKeys = await app.inject({ url: '/audit-log/v1/events?limit=2', headers: keys })
      t.equal(viaKeys.statusCode, 200, 'GET /audit-log/v1/events?limit=2 answers 200')
      t.equal((viaKeys.json() as { events: ApiEvent[] }).events.length, 2, 'events.length is 2')
      t.equal((await client.get('/audit-log/v1/events')).statusCode, 404, 'GET /audit-log/v1/events answers 404')
      t.ok(app.apiRoutes.includes('GET /api/audit-log/v1/events'), 'listed in the OpenAPI document')
    })

    t.test('API: filters, and 400 for anything else', async (t) => {
      const { app, client, admin, ...users } = await setup(t)
      const { acme, events } = await story(app, { admin, ...users })
      const ids = async (qs: string) => {
        const res = await client.get(`/api/audit-log/v1/events?${qs}`)
        t.equal(res.statusCode, 200, qs)
        return (res.json() as { events: ApiEvent[] }).events.map((e) => e.id)
      }
      const { aliceIn, assisted, ghost, aliceWrong, created } = events
      const may = 'f=date.gte:2024-05-01&f=date.lt:2024-06-01'
      t.same(await ids(may), [created.id, aliceWrong.id, ghost.id, assisted.id, aliceIn.id], 'ids(may) is the expected list')
      t.same(await ids('f=date.gt:2024-05-01T13:00:00Z&f=date.lt:2024-05-02'), [ghost.id], 'gt excludes its instant')
      t.same(await ids('f=date.gte:2024-05-01T13:00:00Z&f=date.lte:2024-05-01T14:00:00.000Z'), [ghost.id, assisted.id], 'gte and lte include theirs')
      t.same(await ids('f=date.gt:2024-05-01T07:30:00-0500&f=date.lt:2024-05-01T15:30:00%2B02:00'), [assisted.id], 'offsets with and without a colon')
      t.same(await ids(`f=date.gt:${T0 + 10 * DAY - 1}&f=date.lt:${T0 + 10 * DAY + 1}`), [created.id], 'epoch milliseconds')
      t.same(await ids(`${may}&f=action.eq:auth.sign_in`), [aliceWrong.id, ghost.id, aliceIn.id], `ids(\`\${may}&f=action.eq:auth.sign_in\`) is [aliceWrong.id, ghost.id, aliceIn.id]`)
      t.same(await ids(`${may}&f=action.match:USER.`), [created.id], 'match: part of the action, any case')
      t.same(await ids(`${may}&f=actor_id.eq:${users.alice.uuid}`), [aliceWrong.id, aliceIn.id], 'the actor uuid')
      t.same(await ids(`${may}&f=actor_id.eq:${users.alice.uuid.toUpperCase()}`), [aliceWrong.id, aliceIn.id], 'ids(…) is [aliceWrong.id, aliceIn.id]')
      t.same(await ids(`${may}&f=actor_id.eq:${admin.id}`), [created.id], 'the actor id')
      t.same(await ids(`${may}&f=actor_id.match:${users.bob.uuid.slice(4, 20)}`), [assisted.id], 'part of the actor uuid')
      t.same(await ids(`${may}&f=target_id.eq:${acme}`), [assisted.id], `ids(\`\${may}&f=target_id.eq:\${acme}\`) is [assisted.id]`)
      t.same(await ids(`${may}&f=target_id.match:${users.bob.uuid.slice(9, 23)}`), [created.id], 'ids(…) is [created.id]')
      t.same(await ids(`${may}&f=is_failure.eq:true`), [aliceWrong.id, ghost.id], `ids(\`\${may}&f=is_failure.eq:true\`) is [aliceWrong.id, ghost.id]`)
      t.same(await ids(`${may}&f=is_failure.eq:FALSE`), [created.id, assisted.id, aliceIn.id], `ids(\`\${may}&f=is_failure.eq:FALSE\`) is [created.id, assisted.id, aliceIn.id]`)
      t.same(await ids(`f=action.eq:user.create&f=target_id.eq:${acme}&ft=or`), [created.id, assisted.id], 'ft=or')
      t.same(await ids(`f=actor_id.eq:${uuid()}`), [], `ids(\`f=actor_id.eq:\${uuid()}\`) is []`)

      // limit: 50 by default, at most 10,000.
      await addMany(app, Array.from({ length: 120 }, (_, i) => ({ created_at: T0 - DAY - i, action: 'auth.sign_out' })))
      t.equal((await ids('')).length, 50, 'the default limit')
      t.equal((await ids('limit=7')).length, 7, '(ids(\'limit=7\')).length is 7')
      t.equal((await ids('limit=10000')).length, 5 + 120 + 1, 'every event, with the test client\'s sign-in')
      t.same(await ids('f=action.eq:auth.sign_out&limit=2'), (await ids('f=action.eq:auth.sign_out&limit=3')).slice(0, 2), 'ids(\'f=action.eq:auth.sign_out&limit=2\') is (await ids(\'f=action.eq:auth.sign_out&limit=3\')).slice(0, 2)')

      const bad = async (qs: string, message: RegExp) => {
        const res = await client.get(`/api/audit-log/v1/events?${qs}`)
        t.equal(res.statusCode, 400, qs)
        t.match(res.json(), { statusCode: 400, error: 'Bad Request', message }, qs)
      }
      await bad('limit=10001', /10000|10,000/)
      await bad('limit=0', /limit/)
      await bad('limit=ten', /limit/)
      await bad('f=user.eq:alice', /Unknown filter field "user"\. The filter fields are: date, action, actor_id, target_id, is_failure\./)
      await bad('f=action.neq:auth.sign_in', /The filter field "action" does not allow the operator "neq"; it allows eq, match\./)
      await bad('f=date.eq:2024-05-01', /does not allow the operator "eq"/)
      await bad('f=date.gt:yesterday', /"yesterday" is not a date/)
      await bad('f=date.gt:2024-02-30', /is not a date/)
      await bad('f=is_failure.eq:maybe', /use true or false/)
      await bad('f=action.eq:', /needs a value/)
      await bad('f=actionauth.sign_in', /must look like field\.operator:value/)
      await bad(`f=target_id.eq:${'x'.repeat(201)}`, /longer than 200/)
      await bad('ft=xor', /ft/)
      await bad(Array.from({ length: 51 }, () => 'f=is_failure.eq:true').join('&'), /At most 50 filters/)
    })

    t.test('the demo history: about 60 events of the last 30 days', async (t) => {
      const app = await appFor(t, dialect)
      const admin = await createUser(app, { role: ADMINISTRATOR })
      const team = [admin, await createUser(app, { role: 40 }), await createUser(app, { role: 32 }), await createUser(app, { role: 24 }), await createUser(app, { role: 16 }), await createUser(app, { role: 32, enabled: 0 }), await createUser(app, { role: 16, locked_until: Date.now() + 3_600_000 })]
      const now = Date.now()
      await app.db.insertInto('logos').values({ uuid: uuid(), name: 'Northwind Blue', filename: 'n.png', png: Buffer.from([1]), width: 1, height: 1, created_by: null, created_at: now, updated_at: now }).execute()
      const accounts = Array.from({ length: 8 }, (_, i) => ({ uuid: uuid(), container_name: `Customer ${i}` }))
      await app.db.deleteFrom('audit_events').execute()
      const n = await seedDemoAuditHistory(app.db, team, accounts)
      const rows = await app.db.selectFrom('audit_events').selectAll().orderBy('created_at').execute()
      t.equal(rows.length, n, `rows.length is ${n}`)
      t.ok(n >= 50 && n <= 75, `${n} events`)
      t.ok(rows.every((r) => r.created_at < Date.now() && r.created_at > now - 31 * DAY), 'within the last 30 days, all past')
      const count = (action: string, outcome = 'success') => rows.filter((r) => r.action === action && r.outcome === outcome).length
      t.ok(count('auth.sign_in') >= 15, 'sign-ins')
      t.ok(count('auth.sign_in', 'failure') >= 5, 'failed sign-ins')
      t.ok(rows.some((r) => r.action === 'auth.sign_in' && r.outcome === 'failure' && r.actor_name === null), 'an unknown username')
      const lockouts = rows.filter((r) => r.action === 'auth.lockout')
      t.ok(lockouts.length >= 1 && lockouts.every((r) => r.actor_user_id === team[6]!.id), 'the locked user was locked out')
      t.ok(count('account.update') >= 3, 'account updates')
      t.match(rows.find((r) => r.action === 'account.assign_logo'), { target_type: 'logo', target_name: 'Northwind Blue' }, 'find(…) matches { target_type: \'logo\', target_name: \'Northwind Blue\' }')
      t.ok(count('user.create') >= 1, 'users created')
      t.match(rows.find((r) => r.action === 'user.disable'), { actor_user_id: admin.id, target_id: team[5]!.uuid }, 'rows.find((r) => r.action === \'user.disable\') matches { actor_user_id: admin.id, target_id: team[5]!.uuid }')
      t.ok(rows.some((r) => r.assisting_user_id === admin.id), 'an assisted change')
      t.ok(rows.every((r) => r.ip), 'every event has its IP')
      const c = new Client(app)
      await c.signIn(admin.username)
      const page = await c.get('/audit-log')
      t.equal(page.statusCode, 200, 'GET /audit-log answers 200')
      t.equal(tableRows(page.body).length, 50, 'tableRows(page.body).length is 50')
    })
  })
}

t.test('events in words: crud, descriptions, instants', async (t) => {
  t.same(['auth.sign_in', 'auth.sign_out', 'account.create', 'account.import', 'user.update', 'user.disable', 'logo.delete', 'settings.domain_add', 'settings.domain_remove', 'api_keys.generate', 'audit.export', 'user.delete', 'something.else'].map(crudOf), ['r', 'r', 'c', 'c', 'u', 'u', 'd', 'c', 'd', 'c', 'r', 'd', 'u'], 'map(…) is the expected list')
  const base = { outcome: 'success' as const, actor_name: 'ann@example.com', assisting_name: null, target_type: 'user', target_id: 'u-1', target_name: 'ann@example.com', fields: '{}' }
  t.equal(describeEvent({ ...base, action: 'auth.lockout', fields: '{"minutes":2,"failures":6}' }), 'ann@example.com was locked out for 2 minutes after 6 failed sign-ins.', 'describeEvent(…) is \'ann@example.com was locked out for 2 minutes after…\'')
  t.equal(describeEvent({ ...base, action: 'user.password_change' }), 'ann@example.com changed their password.', 'describeEvent(…) is \'ann@example.com changed their password.\'')
  t.equal(describeEvent({ ...base, action: 'user.password_change', outcome: 'failure', fields: '{"reason":"wrong current password"}' }), 'ann@example.com could not change their password (wrong current password).', 'describeEvent(…) is \'ann@example.com could not change their password (w…\'')
  t.equal(describeEvent({ ...base, action: 'account.assign_logo', target_type: 'logo', target_id: '3', target_name: 'Acme', fields: '{"accounts":1,"logo":"Acme"}' }), 'ann@example.com assigned the logo Acme to 1 account.', 'describeEvent(…) is \'ann@example.com assigned the logo Acme to 1 account.\'')
  t.equal(describeEvent({ ...base, action: 'user.disable', target_name: 'bo@example.com' }), 'ann@example.com disabled the user bo@example.com.', 'describeEvent(…) is \'ann@example.com disabled the user bo@example.com.\'')
  t.equal(describeEvent({ ...base, action: 'settings.domain_add', target_type: 'approved_domain', target_id: 'x.example', target_name: 'x.example' }), 'ann@example.com added the approved domain x.example.', 'describeEvent(…) is \'ann@example.com added the approved domain x.example.\'')
  t.equal(describeEvent({ ...base, action: 'auth.password_reset_requested', actor_name: null, outcome: 'failure', target_type: null, target_id: null, target_name: null, fields: '{"username":"who@example.com"}' }), 'A password reset was asked for who@example.com, who is unknown or disabled: no link was sent.', 'describeEvent(…) is \'A password reset was asked for who@example.com, wh…\'')
  t.equal(describeEvent({ ...base, action: 'thing.happened', actor_name: null, target_type: null, target_id: null, target_name: null, fields: 'not json' }), 'An anonymous user: thing: happened.', 'describeEvent(…) is \'An anonymous user: thing: happened.\'')

  t.equal(parseInstant('2024-05-01'), Date.UTC(2024, 4, 1), 'parseInstant(\'2024-05-01\') is Date.UTC(2024, 4, 1)')
  t.equal(parseInstant('2024-05-01T10:20'), Date.UTC(2024, 4, 1, 10, 20), 'parseInstant(\'2024-05-01T10:20\') is Date.UTC(2024, 4, 1, 10, 20)')
  t.equal(parseInstant('2024-05-01T10:20:30.123456Z'), Date.UTC(2024, 4, 1, 10, 20, 30, 123), 'parseInstant(\'2024-05-01T10:20:30.123456Z\') is Date.UTC(2024, 4, 1, 10, 20, 30, 123)')
  t.equal(parseInstant('2024-05-01T10:20:30+0130'), Date.UTC(2024, 4, 1, 8, 50, 30), 'parseInstant(\'2024-05-01T10:20:30+0130\') is Date.UTC(2024, 4, 1, 8, 50, 30)')
  t.equal(parseInstant('1714557600000'), 1714557600000, 'parseInstant(\'1714557600000\') is 1714557600000')
  t.same(['2024-13-01', '2024-05-01T25:00Z', 'May 1', '', '2024-05-01T10:20:30+5'].map(parseInstant), [null, null, null, null, null], 'map(…) is [null, null, null, null, null]')
})
