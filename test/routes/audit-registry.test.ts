import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { Client, buildTestApp, createUser, dialects } from '../helper.ts'
import { AUDIT_ACTIONS, describeEvent } from '../../src/areas/audit/actions.ts'
import { insertAuditEvent } from '../../src/areas/audit/repository.ts'
import { uuid } from '../../src/lib/tokens.ts'

// One registry of audit actions (src/areas/audit/actions.ts): every action src/ records is
// in it, and the page, its filter, its CSV export and the API all read it.

const SRC = path.resolve(import.meta.dirname, '../../src')
const REGISTRY = AUDIT_ACTIONS as Record<string, { label: string; crud: string }>

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name)
    return d.isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : []
  })
}

const LITERAL = /'([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)'/g

/**
 * The action names recorded in src/: every quoted name in an `action:` property (a ternary
 * included), and every quoted `area.verb` whose area is one of the registry's (as passed to a
 * helper that records it, e.g. settings' editLinks), leaving out table.column references
 * and file names.
 */
function recordedActions(): Map<string, string> {
  const areas = new Set(Object.keys(REGISTRY).map((a) => a.split('.')[0]!))
  const schema = fs.readFileSync(path.join(SRC, 'db/schema.ts'), 'utf8')
  const found = new Map<string, string>()
  for (const file of sourceFiles(SRC)) {
    if (file.includes(`${path.sep}demo-instance${path.sep}`)) continue
    const text = fs.readFileSync(file, 'utf8')
    const where = path.relative(SRC, file)
    for (const m of text.matchAll(/\baction:\s*([^,}\n]+)/g)) {
      for (const [, name] of m[1]!.matchAll(LITERAL)) found.set(name!, where)
    }
    for (const [, name] of text.matchAll(LITERAL)) {
      const [area, rest] = name!.split('.') as [string, string]
      if (!areas.has(area) || /^(png|jpe?g|svg|css|js|json|csv|ts|eta|html)$/.test(rest)) continue
      // `table.column` in a query: a column name declared in the schema.
      if (new RegExp(`^\\s+${rest}\\??:`, 'm').test(schema) && /^[a-z_]+s$|^api_keys$/.test(area)) continue
      found.set(name!, where)
    }
  }
  return found
}

t.test('every action recorded in src/ is in the registry', async (t) => {
  const found = recordedActions()
  // The scan finds what it should (or it would pass on nothing).
  for (const known of ['auth.sign_in', 'user.enable', 'user.disable', 'settings.resource_link_add', 'instance.sso', 'account.export']) t.ok(found.has(known), `the scan finds ${known}`)
  const missing = [...found].filter(([name]) => !Object.hasOwn(REGISTRY, name)).map(([name, file]) => `${name} (${file})`)
  t.same(missing, [], 'add each to AUDIT_ACTIONS in src/areas/audit/actions.ts: a label, a crud letter and a sentence')
})

t.test('each registry entry has a label, a crud letter and a sentence', async (t) => {
  for (const [action, entry] of Object.entries(REGISTRY)) {
    t.match(entry.label, /^[A-Z]/, `${action}: a label`)
    t.ok(['c', 'r', 'u', 'd'].includes(entry.crud), `${action}: a crud letter`)
    const sentence = describeEvent({ action, outcome: 'success', actor_name: 'ann@example.com', assisting_name: null, target_type: 'user', target_id: 'u-1', target_name: 'bo@example.com', fields: '{}' })
    t.match(sentence, /\.$/, `${action}: a sentence`)
    t.notMatch(sentence, /undefined|\[object/, `${action}: no holes`)
  }
})

for (const dialect of dialects) {
  t.test(`${dialect}: the page, its filter, the CSV and the API speak of every action by the registry`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const admin = await createUser(app)
    const client = new Client(app)
    await client.signIn(admin.username)
    const keys = await client.apiKeys()
    const base = Date.UTC(2024, 4, 1)
    const actions = Object.keys(REGISTRY)
    for (const [i, action] of actions.entries()) {
      await insertAuditEvent(app.db, {
        id: uuid(), created_at: base + i * 1000, actor_user_id: admin.id, actor_name: admin.username, assisting_user_id: null, assisting_name: null,
        action, outcome: 'success', target_type: 'user', target_id: 'u-1', target_name: 'bo@example.com', ip: '192.0.2.1', fields: '{}',
      })
    }
    const res = await app.inject({ url: `/api/audit-log/v1/events?limit=1000&f=date.lt:${base + actions.length * 1000}`, headers: keys })
    t.equal(res.statusCode, 200, `GET /api/audit-log/v1/events?limit=1000&f=date.lt:${base + actions.length * 1000} answers 200`)
    const events = (res.json() as { events: Array<{ action: string; crud: string; description: string }> }).events
    t.equal(events.length, actions.length, `events.length is ${actions.length}`)
    for (const e of events) {
      t.equal(e.crud, REGISTRY[e.action]!.crud, `${e.action}: the API's crud letter`)
      t.notMatch(e.description, /@example\.com: /, `${e.action}: a registered sentence, not the fallback`)
    }

    // The Action filter lists the actions in the log by their registered labels.
    const page = await client.get('/audit-log')
    for (const action of ['instance.sso', 'instance.user_transfer', 'user.authorizations_update', 'settings.resource_link_add', 'account.export', 'security.refusals']) {
      t.match(page.body, `<option value="${action}">${REGISTRY[action]!.label}</option>`, `${action}: the filter's label`)
    }
    // The table and the CSV: the label and the sentence.
    const filtered = await client.get('/audit-log?action=instance.sso')
    t.match(filtered.body, 'Signed in to an instance', 'the answer to GET /audit-log?action=instance.sso shows \'Signed in to an instance\'')
    const csv = await client.get('/audit-log/export.csv?action=user.authorizations_update')
    t.match(csv.body, `changed the authorizations of bo@example.com (API: no, password sign-in: no).`, 'the answer to GET /audit-log/export.csv?action=user.authorizations_update shows \'changed the authorizations of bo@example.com (API:…\'')
  })
}
