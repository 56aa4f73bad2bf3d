// The Settings page (Administrator): approved domains, the require-2FA switch, the
// Resource Center links, their cache, and `mssp-portal domains`, on SQLite and PostgreSQL.
import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { HTMX, NON_ADMIN_ROLES, Client, buildTestApp, createUser, dialects, type DialectName } from '../helper.ts'
import settingsRoutes from '../../src/areas/settings/routes.ts'
import { domainsCommand } from '../../src/areas/settings/cli.ts'
import * as settings from '../../src/areas/settings/service.ts'
import { resourceLinks as DEFAULT_LINKS } from '../../src/areas/resources/links.ts'

// Many sign-ins (argon2) on two databases: more than tap's default 30 s under a loaded run.
t.setTimeout(240_000)


/** Registers the Settings routes unless src/app.ts already does. */
async function withSettings(app: FastifyInstance): Promise<void> {
  if (!app.hasRoute({ method: 'GET', url: '/settings' })) await app.register(settingsRoutes)
}

async function signedIn(t: Test, dialect: DialectName, role = 64, username?: string) {
  const { app } = await buildTestApp(t, dialect)
  await withSettings(app)
  const user = await createUser(app, { role, ...(username ? { username } : {}) })
  const client = new Client(app)
  await client.signIn(user.username)
  await client.get(role === 64 ? '/settings' : '/accounts')
  return { app, user, client }
}

function flashOf(res: LightMyRequestResponse): string | undefined {
  return /<div class="flash flash-success" role="status"[^>]*>([^<]*)</.exec(res.body)?.[1]
}

function alertOf(res: LightMyRequestResponse): string {
  return [...res.body.matchAll(/class="(?:alert alert-error|field-error)"[^>]*>([^<]*)</g)].map((m) => m[1]).join(' | ')
}

function savedOf(res: LightMyRequestResponse): string | undefined {
  return /class="alert alert-success" role="status">([^<]*)</.exec(res.body)?.[1]
}

async function domainNames(app: FastifyInstance): Promise<string[]> {
  return (await app.db.selectFrom('approved_domains').select('domain').orderBy('domain').execute()).map((r) => r.domain)
}

async function auditActions(app: FastifyInstance, prefix = 'settings.') {
  return app.db.selectFrom('audit_events').selectAll().where('action', 'like', `${prefix}%`).orderBy('created_at').execute()
}

async function storedLinks(app: FastifyInstance): Promise<Array<{ label: string; href: string }> | null> {
  const row = await app.db.selectFrom('settings').select('value').where('key', '=', 'resource_links').executeTakeFirst()
  return row ? JSON.parse(row.value) : null
}

/** The links form's version token from the last Settings page or card. */
function versionOf(res: LightMyRequestResponse): string {
  return /name="version" value="([^"]+)"/.exec(res.body)![1]!
}

async function addUserAt(app: FastifyInstance, domain: string, extra: Record<string, unknown> = {}) {
  return createUser(app, { role: 16, username: `someone${Math.random().toString(36).slice(2, 8)}@${domain}`, ...extra })
}

const defaults = DEFAULT_LINKS.map((l) => ({ label: l.label, href: l.href }))

for (const dialect of dialects) {
  t.test(`${dialect}: Settings`, async (t) => {
    t.test('the page: approved domains with user counts, the 2FA switch, the Resource Center links', async (t) => {
      const { app, client } = await signedIn(t, dialect, 64, 'admin@example.com')
      await addUserAt(app, 'example.com')
      await settings.addDomain(app.db, 'cli', 'second.example')
      const page = await client.get('/settings')
      t.equal(page.statusCode, 200, 'GET /settings answers 200')
      t.match(page.body, /<!doctype html>/, 'the answer to GET /settings shows /<!doctype html>/')
      t.match(page.body, /<h1>Settings<\/h1>/, 'the answer to GET /settings shows /<h1>Settings<\\/h1>/')
      t.match(page.body, /<h2 id="domains-title">Approved domains<\/h2>/, 'the answer to GET /settings shows /<h2 id="domains-title">Approved domains<\\/h2>/')
      t.match(page.body, /<td><strong>example\.com<\/strong><\/td>\s*<td class="num">2 users<\/td>/, 'example.com: the admin and one more')
      t.match(page.body, /<td><strong>second\.example<\/strong><\/td>\s*<td class="num">0 users<\/td>/, 'the answer to GET /settings shows /<td><strong>second\\.example<\\/strong><\\/td>\\s*<td…/')
      t.match(page.body, 'aria-label="Remove domain second.example"', 'the answer to GET /settings shows \'aria-label="Remove domain second.example"\'')
      t.match(page.body, '<label for="domain">Add a domain</label>', 'the answer to GET /settings shows \'<label for="domain">Add a domain</label>\'')
      t.match(page.body, /<h2 id="two-factor-title">Require two-factor authentication<\/h2>/, 'the answer to GET /settings shows /<h2 id="two-factor-title">Require two-factor auth…/')
      t.match(page.body, /value="off" id="require-2fa-off" checked/, 'off by default')
      t.match(page.body, /sent to My Account to set it up right after signing in/, 'the answer to GET /settings shows /sent to My Account to set it up right after signing in/')
      t.match(page.body, /An authenticator app always satisfies it/, 'the answer to GET /settings shows /An authenticator app always satisfies it/')
      t.match(page.body, /Enabled users without two-factor authentication: 2 of 2\./, 'the answer to GET /settings shows /Enabled users without two-factor authentication: 2 of 2\\./')
      t.match(page.body, /You have not set up two-factor authentication yourself/, 'the answer to GET /settings shows /You have not set up two-factor authentication yourself/')
      t.match(page.body, /<h2 id="links-title">Resource Center links<\/h2>/, 'the answer to GET /settings shows /<h2 id="links-title">Resource Center links<\\/h2>/')
      for (const l of defaults) t.match(page.body, `<strong>${l.label}</strong><br><a class="hint" href="${l.href}">`, `the default link ${l.label} is listed with its address`)
      t.match(page.body, 'These are the default links.', 'the answer to GET /settings shows \'These are the default links.\'')
      t.notMatch(page.body, 'Reset to Defaults', 'nothing to reset yet')
      t.match(page.body, `aria-label="Move ${defaults[0]!.label} down"`, `the answer to GET /settings shows aria-label="Move ${defaults[0]!.label} down"`)
      t.notMatch(page.body, `aria-label="Move ${defaults[0]!.label} up"`, 'the first link cannot move up')
      t.notMatch(page.body, `aria-label="Move ${defaults.at(-1)!.label} down"`, 'the last link cannot move down')
      const ids = [...page.body.matchAll(/ id="([^"]+)"/g)].map((m) => m[1])
      t.same(ids.filter((id, i) => ids.indexOf(id) !== i), [], 'element ids are unique')
      for (const action of ['/settings/domains', '/settings/domains/remove', '/settings/two-factor', '/settings/links', '/settings/links/move', '/settings/links/remove']) {
        t.match(page.body, `method="post" action="${action}" hx-post="${action}"`, `${action}: a plain form with htmx on top`)
      }
    })

    t.test('every route: 403 for Basic, VM Scan Operator, VM Standard and VM Scan Manager; sign-in first for nobody', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      await withSettings(app)
      const routes: Array<[string, string, Record<string, string>]> = [
        ['GET', '/settings', {}],
        ['POST', '/settings/domains', { domain: 'evil.example' }],
        ['POST', '/settings/domains/remove', { domain: 'example.com' }],
        ['POST', '/settings/two-factor', { require_2fa: 'on' }],
        ['POST', '/settings/links', { label: 'Evil', href: 'https://evil.example/', version: 'default' }],
        ['POST', '/settings/links/move', { index: '0', direction: 'down', version: 'default' }],
        ['POST', '/settings/links/remove', { index: '0', version: 'default' }],
        ['POST', '/settings/links/reset', {}],
      ]
      for (const role of NON_ADMIN_ROLES) {
        const user = await createUser(app, { role })
        const c = new Client(app)
        await c.signIn(user.username)
        await c.get('/accounts')
        for (const [method, url, form] of routes) {
          const res = method === 'GET' ? await c.get(url) : await c.post(url, form)
          t.equal(res.statusCode, 403, `role ${role}: ${method} ${url}`)
          if (method === 'POST') {
            const htmx = await c.post(url, form, HTMX)
            t.equal(htmx.statusCode, 403, `role ${role}: ${method} ${url} with htmx`)
          }
        }
      }
      const anonymous = new Client(app)
      for (const [method, url, form] of routes) {
        const res = method === 'GET' ? await anonymous.get(url) : await anonymous.post(url, form)
        t.ok(res.statusCode === 303 || res.statusCode === 403, `nobody: ${method} ${url} is refused (${res.statusCode})`)
        if (method === 'GET') t.match(res.headers.location, /^\/login/, 'an anonymous GET is sent to sign in')
      }
      t.same(await domainNames(app), ['example.com'], 'no domain added or removed')
      t.equal((await settings.getSettings(app.db)).require2fa, false, 'the refused calls left two-factor optional')
      t.equal(await storedLinks(app), null, 'the links untouched')
      t.same(await auditActions(app), [], 'nothing audited')
    })

    t.test("an Administrator's API keys do not reach the pages", async (t) => {
      const { app, client } = await signedIn(t, dialect)
      const headers = { ...(await client.apiKeys()), 'content-type': 'application/x-www-form-urlencoded' }
      const page = await app.inject({ method: 'GET', url: '/settings', headers })
      t.equal(page.statusCode, 401, 'API keys reach the API only')
      const add = await app.inject({ method: 'POST', url: '/settings/domains', headers, payload: 'domain=api.example' })
      t.equal(add.statusCode, 401, 'POST /settings/domains answers 401')
      t.same(await domainNames(app), ['example.com'], 'an API call without a session adds no domain')
    })

    t.test('add a domain without htmx: 303, the message once, listed, audited; lower-cased', async (t) => {
      const { app, client, user } = await signedIn(t, dialect)
      const res = await client.post('/settings/domains', { domain: '  Customer-One.Example.COM ' })
      t.equal(res.statusCode, 303, 'POST /settings/domains answers 303')
      t.equal(res.headers.location, '/settings#settings-domains', 'POST /settings/domains redirects to \'/settings#settings-domains\'')
      t.same(await domainNames(app), ['customer-one.example.com', 'example.com'], 'domainNames(app) is [\'customer-one.example.com\', \'example.com\']')
      const page = await client.get('/settings')
      t.equal(flashOf(page), 'customer-one.example.com was added to the approved domains.', 'flashOf(page) is \'customer-one.example.com was added to the approved domains.\'')
      t.match(page.body, /<td><strong>customer-one\.example\.com<\/strong><\/td>\s*<td class="num">0 users<\/td>/, 'the answer to GET /settings shows /<td><strong>customer-one\\.example\\.com<\\/strong><…/')
      t.equal(flashOf(await client.get('/settings')), undefined, 'the message shows once')
      const [event] = await auditActions(app)
      t.equal(event?.action, 'settings.domain_add', 'the addition is audited as settings.domain_add')
      t.equal(event?.target_id, 'customer-one.example.com', 'the audit names the domain')
      t.equal(event?.actor_user_id, user.id, 'the audit names the Administrator')
      t.equal(event?.outcome, 'success', 'the audit records success')
    })

    t.test('add a domain with htmx: only the card, with the message', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      const res = await client.post('/settings/domains', { domain: 'htmx.example' }, HTMX)
      t.equal(res.statusCode, 200, 'POST /settings/domains answers 200')
      t.notMatch(res.body, /<!doctype html>/i, 'the answer to POST /settings/domains does not show /<!doctype html>/i')
      t.match(res.body, /^<section class="card" id="settings-domains"/, 'the answer to POST /settings/domains shows /^<section class="card" id="settings-domains"/')
      t.equal(savedOf(res), 'htmx.example was added to the approved domains.', 'savedOf(res) is \'htmx.example was added to the approved domains.\'')
      t.match(res.body, '<td><strong>htmx.example</strong></td>', 'the answer to POST /settings/domains shows \'<td><strong>htmx.example</strong></td>\'')
      t.same(await domainNames(app), ['example.com', 'htmx.example'], 'domainNames(app) is [\'example.com\', \'htmx.example\']')
    })

    t.test('invalid and duplicate domains: 422 with the reason, the typed value kept, nothing changed', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      const cases: Array<[string, RegExp]> = [
        ['', /Enter a domain, like example\.com/],
        ['   ', /Enter a domain, like example\.com/],
        ['example', /Enter a full domain with a dot/],
        ['user@example.org', /Enter the domain only, without a name or @/],
        ['@example.org', /Enter the domain only, without a name or @/],
        ['https://example.org', /without https:\/\/ or a path/],
        ['example.org/path', /without https:\/\/ or a path/],
        ['exa mple.org', /cannot contain spaces/],
        ['exa_mple.org', /Use only the letters a-z, digits, hyphens and dots/],
        ['-example.org', /starts and ends with a letter or digit/],
        ['example-.org', /starts and ends with a letter or digit/],
        ['example..org', /two dots in a row/],
        ['.example.org', /two dots in a row, or start with a dot/],
        ['192.168.1.10', /not an IP address/],
        ['example.c0m', /top-level domain of letters/],
        ['example.c', /top-level domain of letters/],
        [`${'a'.repeat(64)}.org`, /at most 63 characters/],
        [`${'abcdefghi.'.repeat(26)}org`, /at most 253 characters/],
        ['bücher.example', /ASCII form: xn--bcher-kva\.example/],
        ['Example.COM', /example\.com is already an approved domain/],
      ]
      for (const [input, message] of cases) {
        const res = await client.post('/settings/domains', { domain: input })
        t.equal(res.statusCode, 422, `"${input}" is refused`)
        t.match(alertOf(res), message, `"${input}": ${message}`)
        t.match(res.body, /<!doctype html>/, 'the whole page again')
        t.match(res.body, /id="domain"[^>]*aria-describedby="domain-error" aria-invalid="true"/, 'the field is marked')
        if (input.trim()) t.match(res.body, `value="${input.replace(/&/g, '&amp;')}"`, 'the typed value is kept')
      }
      const htmx = await client.post('/settings/domains', { domain: 'nodot' }, HTMX)
      t.equal(htmx.statusCode, 422, 'POST /settings/domains answers 422')
      t.match(htmx.body, /^<section class="card" id="settings-domains"/, 'with htmx: the card')
      t.match(alertOf(htmx), /Enter a full domain with a dot/, 'alertOf(htmx) matches /Enter a full domain with a dot/')
      t.same(await domainNames(app), ['example.com'], 'nothing added')
      t.same(await auditActions(app), [], 'a refused domain is not audited')
    })

    t.test('remove a domain: unused ones go (audited); in use or the last one: 422 with the reason', async (t) => {
      const { app, client, user } = await signedIn(t, dialect, 64, 'admin@example.com')
      await settings.addDomain(app.db, 'cli', 'unused.example')
      await settings.addDomain(app.db, 'cli', 'busy.example')
      await settings.addDomain(app.db, 'cli', 'sub.busy.example')
      await addUserAt(app, 'busy.example')
      await addUserAt(app, 'busy.example', { enabled: 0 })
      await client.get('/settings')

      let res = await client.post('/settings/domains/remove', { domain: 'unused.example' })
      t.equal(res.statusCode, 303, 'POST /settings/domains/remove answers 303')
      t.equal(flashOf(await client.get('/settings')), 'unused.example was removed from the approved domains.', 'flashOf(client.get(\'/settings\')) is \'unused.example was removed from the approved domains.\'')
      t.same(await domainNames(app), ['busy.example', 'example.com', 'sub.busy.example'], 'domainNames(app) is [\'busy.example\', \'example.com\', \'sub.busy.example\']')
      const removed = (await auditActions(app)).filter((e) => e.action === 'settings.domain_remove')
      t.equal(removed.length, 1, 'one removal audited')
      t.equal(removed[0]!.target_id, 'unused.example', 'the audit names the removed domain')
      t.equal(removed[0]!.actor_user_id, user.id, 'the audit names the Administrator')

      res = await client.post('/settings/domains/remove', { domain: 'busy.example' })
      t.equal(res.statusCode, 422, 'users at the domain (one of them disabled): refused')
      t.match(alertOf(res), 'busy.example cannot be removed: 2 users have usernames at this domain. Change or delete those users first.', 'alertOf(res) matches \'busy.example cannot be removed: 2 users have usern…\'')
      t.match(res.body, /<td><strong>busy\.example<\/strong><\/td>\s*<td class="num">2 users<\/td>/, 'the page shows the count')

      res = await client.post('/settings/domains/remove', { domain: 'example.com' }, HTMX)
      t.equal(res.statusCode, 422, 'the signed-in Administrator is at example.com')
      t.match(res.body, /^<section class="card" id="settings-domains"/, 'the answer to POST /settings/domains/remove shows /^<section class="card" id="settings-domains"/')
      t.match(alertOf(res), 'example.com cannot be removed: 1 user has a username at this domain. Change or delete that user first.', 'alertOf(res) matches \'example.com cannot be removed: 1 user has a userna…\'')

      res = await client.post('/settings/domains/remove', { domain: 'sub.busy.example' })
      t.equal(res.statusCode, 303, 'users at busy.example do not count for sub.busy.example')

      res = await client.post('/settings/domains/remove', { domain: 'nowhere.example' })
      t.equal(res.statusCode, 422, 'POST /settings/domains/remove answers 422')
      t.match(alertOf(res), 'nowhere.example is not an approved domain.', 'alertOf(res) matches \'nowhere.example is not an approved domain.\'')
      t.same(await domainNames(app), ['busy.example', 'example.com'], 'domainNames(app) is [\'busy.example\', \'example.com\']')

      // The last domain: its users gone (deleted directly), it is still refused.
      await app.db.deleteFrom('users').execute()
      await settings.removeDomain(app.db, 'cli', 'busy.example')
      await t.rejects(settings.removeDomain(app.db, 'cli', 'example.com'), { statusCode: 422, message: /example\.com cannot be removed: it is the last approved domain/ }, 'the last approved domain cannot be removed')
      t.same(await domainNames(app), ['example.com'], 'one domain always stays')
    })

    t.test('LIKE wildcards in a stored domain do not match other users', async (t) => {
      const { app } = await signedIn(t, dialect)
      // A domain the form would refuse, stored by older rules: _ is a LIKE wildcard.
      await app.db.insertInto('approved_domains').values({ domain: 'ex_mple.com', created_at: Date.now() }).execute()
      await addUserAt(app, 'exxmple.com')
      t.equal(await settings.countUsersAtDomain(app.db, 'ex_mple.com'), 0, 'an underscore in a domain is not a LIKE wildcard')
      t.equal(await settings.countUsersAtDomain(app.db, 'exxmple.com'), 1, 'the user at exxmple.com is counted at exxmple.com')
      await settings.removeDomain(app.db, 'cli', 'ex_mple.com')
      t.notOk((await domainNames(app)).includes('ex_mple.com'), 'ex_mple.com is removed although a user is at exxmple.com')
    })

    t.test('require two-factor authentication: on and off, audited; users without it are sent to setup', async (t) => {
      const { app, client, user } = await signedIn(t, dialect)
      // The Administrator has an authenticator app (so the switch does not send them away).
      await app.db.insertInto('two_factor').values({ user_id: user.id, sms_phone: null, pending_phone: null, email_enabled: 0, totp_secret: 'x', pending_totp_secret: null, totp_last_step: null, updated_at: Date.now() }).execute()
      const basic = await createUser(app, { role: 16 })
      let page = await client.get('/settings')
      t.notMatch(page.body, 'You have not set up two-factor authentication yourself', 'the answer to GET /settings does not show \'You have not set up two-factor authentication yourself\'')
      t.match(page.body, /Enabled users without two-factor authentication: 1 of 2\./, 'the answer to GET /settings shows /Enabled users without two-factor authentication: 1 of 2\\./')

      let res = await client.post('/settings/two-factor', { require_2fa: 'on' })
      t.equal(res.statusCode, 303, 'POST /settings/two-factor answers 303')
      t.equal(res.headers.location, '/settings#settings-two-factor', 'POST /settings/two-factor redirects to \'/settings#settings-two-factor\'')
      t.equal((await settings.getSettings(app.db)).require2fa, true, 'the cache is cleared at once')
      page = await client.get('/settings')
      t.match(flashOf(page), /Two-factor authentication is now required/, 'flashOf(page) matches /Two-factor authentication is now required/')
      t.match(page.body, /value="on" id="require-2fa-on" checked/, 'the answer to GET /settings shows /value="on" id="require-2fa-on" checked/')
      t.match(page.body, /<span class="tag tag-green">On<\/span>/, 'the answer to GET /settings shows /<span class="tag tag-green">On<\\/span>/')

      const other = new Client(app)
      res = await other.signIn(basic.username)
      const next = await other.get('/accounts')
      t.equal(next.statusCode, 303, 'GET /accounts answers 303')
      t.equal(next.headers.location, '/my-account?setup=required', 'a user without 2FA is sent to setup')

      res = await client.post('/settings/two-factor', { require_2fa: 'on' })
      t.match(flashOf(await client.get('/settings')), /Nothing changed: two-factor authentication was already required/, 'flashOf(client.get(\'/settings\')) matches /Nothing changed: two-factor authentication was al…/')

      res = await client.post('/settings/two-factor', { require_2fa: 'off' }, HTMX)
      t.equal(res.statusCode, 200, 'POST /settings/two-factor answers 200')
      t.match(res.body, /^<section class="card" id="settings-two-factor"/, 'the answer to POST /settings/two-factor shows /^<section class="card" id="settings-two-factor"/')
      t.equal(savedOf(res), 'Two-factor authentication is now optional.', 'savedOf(res) is \'Two-factor authentication is now optional.\'')
      t.equal((await settings.getSettings(app.db)).require2fa, false, 'two-factor is optional again')
      t.equal((await other.get('/accounts')).statusCode, 200, 'the user gets in again')

      for (const bad of [{}, { require_2fa: 'yes' }, { require_2fa: '1' }] as Array<Record<string, string>>) {
        const r = await client.post('/settings/two-factor', bad)
        t.equal(r.statusCode, 422, `${JSON.stringify(bad)} is refused`)
        t.match(alertOf(r), 'Choose On or Off.', 'alertOf(r) matches \'Choose On or Off.\'')
      }
      const events = (await auditActions(app)).filter((e) => e.action === 'settings.require_2fa')
      t.same(events.map((e) => JSON.parse(e.fields)), [{ value: true, previous: false }, { value: false, previous: true }], 'each change audited once (not the no-op)')
    })

    t.test('turning it on without a second factor of your own: sent to set it up', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      let res = await client.post('/settings/two-factor', { require_2fa: 'on' })
      t.equal(res.statusCode, 303, 'POST /settings/two-factor answers 303')
      t.equal(res.headers.location, '/my-account?setup=required', 'POST /settings/two-factor redirects to \'/my-account?setup=required\'')
      t.equal((await settings.getSettings(app.db)).require2fa, true, 'requiring two-factor is stored')
      res = await client.get('/settings')
      t.equal(res.headers.location, '/my-account?setup=required', 'the guard sends the Administrator too')
      await settings.setRequire2fa(app.db, false)
      const second = await createUser(app)
      const htmx = new Client(app)
      await htmx.signIn(second.username)
      await htmx.get('/settings')
      res = await htmx.post('/settings/two-factor', { require_2fa: 'on' }, HTMX)
      t.equal(res.headers['hx-redirect'], '/my-account?setup=required', 'with htmx too')
    })

    t.test('Resource Center links: add (https and portal paths), audited, stored as JSON, served by getResourceLinks', async (t) => {
      const { app, client, user } = await signedIn(t, dialect)
      const page = await client.get('/settings')
      t.equal(versionOf(page), 'default', 'the links start at the default version')
      let res = await client.post('/settings/links', { label: '  Tenable blog ', href: 'https://www.tenable.com/blog', version: 'default' })
      t.equal(res.statusCode, 303, 'POST /settings/links answers 303')
      t.equal(res.headers.location, '/settings#settings-links', 'POST /settings/links redirects to \'/settings#settings-links\'')
      const added = [...defaults, { label: 'Tenable blog', href: 'https://www.tenable.com/blog' }]
      t.same(await storedLinks(app), added, 'the new link is stored after the defaults')
      t.same(await settings.getResourceLinks(app.db), added, 'the cache is cleared at once')
      const after = await client.get('/settings')
      t.equal(flashOf(after), '“Tenable blog” was added to the Resource Center.', 'flashOf(after) is \'“Tenable blog” was added to the Resource Center.\'')
      t.match(after.body, '<strong>Tenable blog</strong>', 'the answer to GET /settings shows \'<strong>Tenable blog</strong>\'')
      t.match(after.body, 'Reset to Defaults', 'the answer to GET /settings shows \'Reset to Defaults\'')
      t.notMatch(after.body, 'These are the default links.', 'the answer to GET /settings does not show \'These are the default links.\'')
      t.match(after.body, '<a href="/accounts">', 'sanity: a signed-in page')
      t.match(after.body, 'href="https://www.tenable.com/blog"', 'shown on the Settings page')
      t.ok(after.body.includes('<li><a href="https://www.tenable.com/blog">Tenable blog</a></li>'), 'and in the Resource Center menu')

      res = await client.post('/settings/links', { label: 'Status', href: '/help/status?x=1#top', version: versionOf(after) }, HTMX)
      t.equal(res.statusCode, 200, 'POST /settings/links answers 200')
      t.match(res.body, /^<section class="card" id="settings-links"/, 'the answer to POST /settings/links shows /^<section class="card" id="settings-links"/')
      t.equal(savedOf(res), '“Status” was added to the Resource Center.', 'savedOf(res) is \'“Status” was added to the Resource Center.\'')
      t.same((await settings.getResourceLinks(app.db)).at(-1), { label: 'Status', href: '/help/status?x=1#top' }, 'a relative link is stored as typed')

      // A host name is normalised by the URL parser; the label is escaped on the page.
      res = await client.post('/settings/links', { label: '<b>Docs</b> & more', href: 'https://Docs.Example.COM', version: versionOf(res) })
      t.equal(res.statusCode, 303, 'POST /settings/links answers 303')
      t.same((await settings.getResourceLinks(app.db)).at(-1), { label: '<b>Docs</b> & more', href: 'https://docs.example.com/' }, 'the label is stored as typed and the address normalised')
      const escaped = await client.get('/settings')
      t.match(escaped.body, '&lt;b&gt;Docs&lt;/b&gt; &amp; more', 'the answer to GET /settings shows \'&lt;b&gt;Docs&lt;/b&gt; &amp; more\'')
      t.notMatch(escaped.body, '<b>Docs</b>', 'the answer to GET /settings does not show \'<b>Docs</b>\'')

      const events = (await auditActions(app)).filter((e) => e.action === 'settings.resource_link_add')
      t.equal(events.length, 3, 'three additions, three audits')
      t.equal(events[0]!.actor_user_id, user.id, 'the audit names the Administrator')
      t.same(JSON.parse(events[0]!.fields), { label: 'Tenable blog', href: 'https://www.tenable.com/blog', count: defaults.length + 1 }, 'the first audit records the link and the new count')
    })

    t.test('link validation: 422 with the reason, the typed values kept, nothing changed', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      const cases: Array<[Record<string, string>, string, RegExp]> = [
        [{ label: '', href: '/help/x' }, 'label', /Enter the label the menu shows/],
        [{ label: '   ', href: '/help/x' }, 'label', /Enter the label the menu shows/],
        [{ label: 'x'.repeat(101), href: '/help/x' }, 'label', /at most 100 characters/],
        [{ label: 'Tab\there', href: '/help/x' }, 'label', /control characters/],
        [{ label: 'Docs', href: '' }, 'href', /Enter the URL/],
        [{ label: 'Docs', href: 'http://example.com/' }, 'href', /plain http:\/\/ links are not allowed/],
        [{ label: 'Docs', href: 'javascript:alert(1)' }, 'href', /Only https:\/\/ addresses and paths on the portal/],
        [{ label: 'Docs', href: 'JavaScript:alert(1)' }, 'href', /Only https:\/\/ addresses and paths on the portal/],
        [{ label: 'Docs', href: 'data:text/html,hi' }, 'href', /Only https:\/\/ addresses/],
        [{ label: 'Docs', href: 'mailto:soc@example.com' }, 'href', /Only https:\/\/ addresses/],
        [{ label: 'Docs', href: '//evil.example/' }, 'href', /starts with a single \//],
        [{ label: 'Docs', href: '/\\evil.example/' }, 'href', /starts with a single \//],
        [{ label: 'Docs', href: 'www.example.com' }, 'href', /starting with https:\/\//],
        [{ label: 'Docs', href: 'help/accounts' }, 'href', /starting with https:\/\//],
        [{ label: 'Docs', href: 'https://' }, 'href', /not a valid https:\/\/ address/],
        [{ label: 'Docs', href: 'https:evil.example' }, 'href', /not a valid https:\/\/ address/],
        [{ label: 'Docs', href: 'https://user:pw@example.com/' }, 'href', /user name or password/],
        [{ label: 'Docs', href: 'https://example.com/a b' }, 'href', /spaces/],
        [{ label: 'Docs', href: '/help/"onmouseover' }, 'href', /character a link cannot carry/],
        [{ label: 'Docs', href: `https://example.com/${'a'.repeat(2000)}` }, 'href', /at most 2000 characters/],
        [{ label: 'Again', href: defaults[0]!.href }, 'href', /already in the list/],
      ]
      for (const [form, field, message] of cases) {
        const res = await client.post('/settings/links', { ...form, version: 'default' })
        t.equal(res.statusCode, 422, `${JSON.stringify(form).slice(0, 80)} is refused`)
        t.match(alertOf(res), message, `alertOf(res) matches ${message}`)
        t.match(res.body, new RegExp(`id="link-${field}"[^>]*aria-describedby="${field}-error" aria-invalid="true"`), `the ${field} field is marked`)
        if (form.label!.trim() && form.label!.length < 50 && !form.label!.includes('\t')) t.match(res.body, `id="link-label" name="label" type="text" maxlength="100" required value="${form.label}"`, 'the typed label is kept')
      }
      const htmx = await client.post('/settings/links', { label: 'Docs', href: 'http://example.com/', version: 'default' }, HTMX)
      t.equal(htmx.statusCode, 422, 'POST /settings/links answers 422')
      t.match(htmx.body, /^<section class="card" id="settings-links"/, 'the answer to POST /settings/links shows /^<section class="card" id="settings-links"/')
      t.equal(await storedLinks(app), null, 'nothing stored')
      t.same(await auditActions(app), [], 'a refused link is not audited')
    })

    t.test('at most 20 links', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      let version = 'default'
      for (let i = defaults.length; i < settings.MAX_RESOURCE_LINKS; i++) {
        const res = await client.post('/settings/links', { label: `Link ${i}`, href: `/help/${i}`, version }, HTMX)
        t.equal(res.statusCode, 200, 'POST /settings/links answers 200')
        version = versionOf(res)
      }
      const res = await client.post('/settings/links', { label: 'One too many', href: '/help/more', version })
      t.equal(res.statusCode, 422, 'POST /settings/links answers 422')
      t.match(alertOf(res), 'The Resource Center can hold at most 20 links. Remove one first.', 'alertOf(res) matches \'The Resource Center can hold at most 20 links. Rem…\'')
      t.equal((await settings.getResourceLinks(app.db)).length, 20, 'the list stays at 20 links')
    })

    t.test('reorder with up and down, remove, reset to defaults; each audited', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      let page = await client.get('/settings')
      let res = await client.post('/settings/links/move', { index: '0', direction: 'down', version: versionOf(page) })
      t.equal(res.statusCode, 303, 'POST /settings/links/move answers 303')
      const swapped = [defaults[1]!, defaults[0]!, ...defaults.slice(2)]
      t.same(await settings.getResourceLinks(app.db), swapped, 'the first two links swapped places')
      page = await client.get('/settings')
      t.equal(flashOf(page), `“${defaults[0]!.label}” was moved down.`, `flashOf(page) is “${defaults[0]!.label}” was moved down.`)

      const last = defaults.length - 1
      res = await client.post('/settings/links/move', { index: String(last), direction: 'up', version: versionOf(page) }, HTMX)
      t.equal(res.statusCode, 200, 'POST /settings/links/move answers 200')
      t.equal(savedOf(res), `“${defaults[last]!.label}” was moved up.`, `savedOf(res) is “${defaults[last]!.label}” was moved up.`)
      const moved = [...swapped]
      ;[moved[last - 1], moved[last]] = [moved[last]!, moved[last - 1]!]
      t.same(await settings.getResourceLinks(app.db), moved, 'the last link moved up one')

      // Out of range, or no direction: refused, nothing changed.
      for (const [form, message] of [
        [{ index: '0', direction: 'up' }, /is already first/],
        [{ index: String(last), direction: 'down' }, /is already last/],
        [{ index: '99', direction: 'up' }, /no longer in the list/],
        [{ index: '-1', direction: 'up' }, /no longer in the list/],
        [{ index: 'x', direction: 'up' }, /no longer in the list/],
        [{ index: '1', direction: 'sideways' }, /up or down/],
      ] as const) {
        const r = await client.post('/settings/links/move', { ...form, version: versionOf(res) })
        t.equal(r.statusCode, 422, JSON.stringify(form))
        t.match(alertOf(r), message, `alertOf(r) matches ${message}`)
      }
      t.same(await settings.getResourceLinks(app.db), moved, 'refused moves change nothing')

      page = await client.get('/settings')
      res = await client.post('/settings/links/remove', { index: '0', version: versionOf(page) })
      t.equal(res.statusCode, 303, 'POST /settings/links/remove answers 303')
      t.same(await settings.getResourceLinks(app.db), moved.slice(1), 'the first link is removed')
      t.equal(flashOf(await client.get('/settings')), `“${moved[0]!.label}” was removed from the Resource Center.`, `flashOf(client.get('/settings')) is “${moved[0]!.label}” was removed from the Resource Center.`)

      // Remove every link: the menu may be empty.
      for (let i = moved.length - 1; i > 0; i--) {
        page = await client.get('/settings')
        await client.post('/settings/links/remove', { index: '0', version: versionOf(page) })
      }
      t.same(await settings.getResourceLinks(app.db), [], 'every link removed leaves the list empty')
      page = await client.get('/settings')
      t.match(page.body, 'No links: the Resource Center menu is empty.', 'the answer to GET /settings shows \'No links: the Resource Center menu is empty.\'')

      res = await client.post('/settings/links/reset', {})
      t.equal(res.statusCode, 303, 'POST /settings/links/reset answers 303')
      t.equal(await storedLinks(app), null, 'the stored list is gone')
      t.same(await settings.getResourceLinks(app.db), defaults, 'Reset to Defaults shows the default links')
      page = await client.get('/settings')
      t.equal(flashOf(page), 'The Resource Center shows the default links again.', 'flashOf(page) is \'The Resource Center shows the default links again.\'')
      t.match(page.body, 'These are the default links.', 'the answer to GET /settings shows \'These are the default links.\'')

      const actions = (await auditActions(app)).map((e) => e.action)
      t.same(actions, ['settings.resource_link_move', 'settings.resource_link_move', ...Array(defaults.length).fill('settings.resource_link_remove'), 'settings.resource_links_reset'], 'moves, removals and the reset are each audited')
      res = await client.post('/settings/links/reset', {})
      t.equal(res.statusCode, 303, 'POST /settings/links/reset answers 303')
      t.equal((await auditActions(app)).length, actions.length, 'resetting the defaults again changes (and audits) nothing')
    })

    t.test('an edit made from an older page is refused (409), never misapplied', async (t) => {
      const { app, client } = await signedIn(t, dialect)
      const stale = await client.get('/settings')
      // Meanwhile the list changes (as from another Administrator's page).
      await client.post('/settings/links/move', { index: '0', direction: 'down', version: versionOf(stale) })
      const expected = await settings.getResourceLinks(app.db)
      for (const [url, form] of [
        ['/settings/links/remove', { index: '0' }],
        ['/settings/links/move', { index: '1', direction: 'up' }],
        ['/settings/links', { label: 'Late', href: '/help/late' }],
      ] as const) {
        const res = await client.post(url, { ...form, version: versionOf(stale) })
        t.equal(res.statusCode, 409, `${url} from the old page`)
        t.match(alertOf(res), /were changed meanwhile/, 'alertOf(res) matches /were changed meanwhile/')
        t.match(res.body, `name="version" value="${versionOf(await client.get('/settings'))}"`, 'the page shows the current list')
      }
      t.same(await settings.getResourceLinks(app.db), expected, 'nothing changed')
      const missing = await client.post('/settings/links/remove', { index: '0' })
      t.equal(missing.statusCode, 409, 'no version at all: refused too')
    })

    t.test('the cache: another process’s change applies within SETTINGS_TTL_MS; a broken value falls back to the defaults', async (t) => {
      const { app } = await signedIn(t, dialect)
      t.same(await settings.getResourceLinks(app.db), defaults, 'a fresh portal has the default links')
      t.equal((await settings.getSettings(app.db)).require2fa, false, 'and two-factor optional')
      // Written behind the cache's back, as the CLI or another portal process would.
      const now = Date.now()
      await app.db.insertInto('settings').values([
        { key: 'resource_links', value: JSON.stringify([{ label: 'Elsewhere', href: 'https://elsewhere.example/' }]), updated_at: now },
        { key: 'require_2fa', value: 'true', updated_at: now },
      ]).execute()
      t.same(await settings.getResourceLinks(app.db), defaults, 'still the cached list')
      t.equal((await settings.getSettings(app.db)).require2fa, false, 'two-factor still read from the cache')
      const realNow = Date.now
      Date.now = () => realNow() + settings.SETTINGS_TTL_MS + 1
      t.teardown(() => {
        Date.now = realNow
      })
      try {
        t.same(await settings.getResourceLinks(app.db), [{ label: 'Elsewhere', href: 'https://elsewhere.example/' }], 'picked up after the TTL')
        t.equal((await settings.getSettings(app.db)).require2fa, true, 'the other process\'s two-factor setting is picked up after the TTL')
      } finally {
        Date.now = realNow
      }
      for (const broken of ['not json', '{"label":"x"}', JSON.stringify([{ label: 'Bad', href: 'javascript:alert(1)' }]), JSON.stringify([{ label: '', href: '/x' }])]) {
        await app.db.updateTable('settings').set({ value: broken }).where('key', '=', 'resource_links').execute()
        settings.clearSettingsCache(app.db)
        t.same(await settings.getResourceLinks(app.db), defaults, `${broken}: the defaults`)
      }
    })

    t.test('mssp-portal domains: list, add, remove with the same rules and exit codes', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      await createUser(app, { username: 'admin@example.com' })
      await createUser(app, { username: 'second@example.com', role: 16 })
      const run = async (...args: string[]) => {
        const out: string[] = []
        const err: string[] = []
        const code = await domainsCommand(app.db, args, (l) => out.push(l), (l) => err.push(l))
        return { code, out: out.join('\n'), err: err.join('\n') }
      }
      let r = await run('list')
      t.same(r, { code: 0, out: 'example.com  2 users', err: '' }, 'domains list: each domain with its user count')
      r = await run('add', 'Customer.Example')
      t.same(r, { code: 0, out: 'customer.example is now an approved domain.', err: '' }, 'domains add: lower-cased and confirmed')
      r = await run('add', 'customer.example')
      t.same(r, { code: 1, out: '', err: 'customer.example is already an approved domain.' }, 'adding a domain twice is refused')
      r = await run('add', 'not a domain')
      t.equal(r.code, 1, 'a domain with spaces is refused')
      t.match(r.err, /spaces/, 'the refusal mentions the spaces')
      r = await run('list')
      t.equal(r.out, 'customer.example  0 users\nexample.com       2 users', 'the list is aligned and sorted')
      r = await run('remove', 'example.com')
      t.same(r, { code: 1, out: '', err: 'example.com cannot be removed: 2 users have usernames at this domain. Change or delete those users first.' }, 'a domain with users cannot be removed')
      r = await run('remove', 'customer.example')
      t.same(r, { code: 0, out: 'customer.example is no longer an approved domain.', err: '' }, 'domains remove: confirmed')
      r = await run('remove', 'customer.example')
      t.same(r, { code: 1, out: '', err: 'customer.example is not an approved domain.' }, 'removing an unknown domain is refused')
      await app.db.deleteFrom('users').execute()
      r = await run('remove', 'example.com')
      t.equal(r.code, 1, 'the last approved domain cannot be removed')
      t.match(r.err, /last approved domain/, 'the refusal says it is the last')
      t.same(await domainNames(app), ['example.com'], 'example.com is kept')

      for (const args of [[], ['frobnicate'], ['add'], ['add', 'a.example', 'b.example'], ['remove'], ['list', 'extra']]) {
        const u = await run(...args)
        t.equal(u.code, 2, `usage: domains ${args.join(' ')}`)
        t.match(u.err, /Usage: mssp-portal domains/, 'the usage is printed')
      }
      const help = await run('--help')
      t.equal(help.code, 0, '--help exits 0')
      t.match(help.out, /Usage: mssp-portal domains/, '--help prints the usage')
      // Without a separate error stream, refusals go to the one given.
      const lines: string[] = []
      t.equal(await domainsCommand(app.db, ['add', 'example.com'], (l) => lines.push(l)), 1, 'a refusal exits 1')
      t.same(lines, ['example.com is already an approved domain.'], 'the refusal goes to the one output given')

      const events = await auditActions(app)
      t.same(events.map((e) => [e.action, e.target_id, e.actor_user_id, JSON.parse(e.fields).via]), [
        ['settings.domain_add', 'customer.example', null, 'cli'],
        ['settings.domain_remove', 'customer.example', null, 'cli'],
      ], 'audited as the command line')
    })
  })
}
