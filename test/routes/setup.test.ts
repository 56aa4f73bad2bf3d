import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { Client, buildTestApp, createUser, dialects } from '../helper.ts'
import { createSetupLink } from '../../src/areas/auth/service.ts'
import { bootstrapFirstAdministrator } from '../../src/ops/bootstrap.ts'

const ADMIN_PASSWORD = 'Harbor-Lights-31-Copper'
const INVALID_LINK = 'This setup link is invalid, has expired or has been used already.'

const FORM = {
  name: 'Ada Lovelace',
  username: 'ada@msp.example',
  email: 'ada.lovelace@mail.example',
  password: ADMIN_PASSWORD,
  confirm: ADMIN_PASSWORD,
}

function tokenOf(link: string): string {
  return new URL(link).searchParams.get('token') ?? ''
}

async function newSetupLink(app: FastifyInstance): Promise<string> {
  const link = await createSetupLink(app)
  if (!link) throw new Error('no setup link on an empty database')
  return link
}

/** Opens the setup link and submits the form, as the operator would. */
async function submitSetup(app: FastifyInstance, token: string, form: Record<string, string> = FORM) {
  const client = new Client(app)
  const page = await client.get(`/setup?token=${encodeURIComponent(token)}`)
  // An invalid link's page has no form: post with this browser's token from another page.
  if (!client.csrf) await client.get('/login')
  const res = await client.post('/setup', { token, ...form })
  return { page, res }
}

async function counts(app: FastifyInstance) {
  const users = await app.db.selectFrom('users').selectAll().execute()
  const domains = await app.db.selectFrom('approved_domains').selectAll().execute()
  return { users: users.length, domains: domains.length }
}

for (const dialect of dialects) {
  t.test(`${dialect}: first Administrator`, async (t) => {
    t.test('a setup link exists only while the database has no users', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const link = await createSetupLink(app)
      t.ok(link?.startsWith('http://portal.test/setup?token='), `the link uses BASE_URL: ${link}`)
      t.ok(tokenOf(link!).length >= 40, 'a long random token')
      const codes = await app.db.selectFrom('one_time_codes').selectAll().execute()
      t.equal(codes.length, 1)
      t.notOk(JSON.stringify(codes).includes(tokenOf(link!)), 'stored only hashed')
      await createUser(app)
      t.equal(await createSetupLink(app), null, 'none once a user exists')
    })

    t.test('the setup page has the form', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const link = await newSetupLink(app)
      const res = await new Client(app).get(link.replace('http://portal.test', ''))
      t.equal(res.statusCode, 200)
      for (const label of ['Full Name', 'Username', 'Email', 'Password', 'Verify Password', 'Create Administrator']) t.match(res.body, label)
      t.equal(res.headers['referrer-policy'], 'no-referrer', 'the token does not leak as a referrer')
    })

    t.test('submitting creates an Administrator and approves the domain', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { res } = await submitSetup(app, tokenOf(await newSetupLink(app)), { ...FORM, username: 'Ada@MSP.example' })
      t.equal(res.statusCode, 303)
      t.equal(res.headers.location, '/login?m=setup')
      const users = await app.db.selectFrom('users').selectAll().execute()
      t.equal(users.length, 1)
      t.equal(users[0]!.username, 'ada@msp.example', 'stored in lower case')
      t.equal(users[0]!.name, 'Ada Lovelace')
      t.equal(users[0]!.email, 'ada.lovelace@mail.example')
      t.equal(users[0]!.role, 64, 'an Administrator')
      t.equal(users[0]!.enabled, 1)
      t.notMatch(users[0]!.password_hash, ADMIN_PASSWORD)
      const domains = await app.db.selectFrom('approved_domains').select('domain').execute()
      t.same(domains.map((d) => d.domain), ['msp.example'])
      const login = await new Client(app).get('/login?m=setup')
      t.match(login.body, 'The Administrator has been created.')
      const client = new Client(app)
      t.equal((await client.signIn('ada@msp.example', ADMIN_PASSWORD)).statusCode, 303, 'the new Administrator can sign in')
      const page = await client.get('/accounts')
      t.match(page.body, 'href="/users"', 'with the Administrator navigation')
      const events = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'setup.first_administrator').execute()
      t.equal(events.length, 1)
      t.equal(events[0]!.target_name, 'ada@msp.example')
    })

    t.test('the link works once', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const token = tokenOf(await newSetupLink(app))
      t.equal((await submitSetup(app, token)).res.statusCode, 303)
      const { page, res } = await submitSetup(app, token, { ...FORM, username: 'mallory@evil.example' })
      t.equal(page.statusCode, 410)
      t.match(page.body, INVALID_LINK)
      t.notMatch(page.body, 'name="password"', 'no form')
      t.equal(res.statusCode, 410)
      t.match(res.body, INVALID_LINK)
      const users = await app.db.selectFrom('users').select('username').execute()
      t.same(users.map((u) => u.username), ['ada@msp.example'], 'no second Administrator')
      t.same((await app.db.selectFrom('approved_domains').select('domain').execute()).map((d) => d.domain), ['msp.example'])
    })

    t.test('a bad, missing or expired token gives 410', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const token = tokenOf(await newSetupLink(app))
      for (const url of ['/setup', '/setup?token=', '/setup?token=nonsense', `/setup?token=${token.slice(0, -2)}`]) {
        const res = await new Client(app).get(url)
        t.equal(res.statusCode, 410, url)
        t.match(res.body, INVALID_LINK, url)
      }
      t.equal((await submitSetup(app, 'nonsense')).res.statusCode, 410)
      await app.db.updateTable('one_time_codes').set({ expires_at: Date.now() - 1000 }).execute()
      const { page, res } = await submitSetup(app, token)
      t.equal(page.statusCode, 410, 'expired')
      t.equal(res.statusCode, 410)
      t.same(await counts(app), { users: 0, domains: 0 }, 'nothing created')
    })

    t.test('a new link voids the previous one', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const first = tokenOf(await newSetupLink(app))
      const second = tokenOf(await newSetupLink(app))
      t.equal((await new Client(app).get(`/setup?token=${first}`)).statusCode, 410)
      t.equal((await submitSetup(app, second)).res.statusCode, 303)
    })

    t.test('a reset token is not a setup token, nor the other way round', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const token = tokenOf(await newSetupLink(app))
      t.equal((await new Client(app).get(`/reset-password?token=${token}`)).statusCode, 410)
      t.equal((await submitSetup(app, token)).page.statusCode, 200, 'still valid for setup')
    })

    t.test('invalid input gives 422 with the message and creates nothing', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const token = tokenOf(await newSetupLink(app))
      const cases: Array<[string, Record<string, string>, string]> = [
        ['weak password', { password: 'Sh0rt!pw', confirm: 'Sh0rt!pw' }, 'Passwords must be at least 12 characters long'],
        ['common password', { password: 'Password123!', confirm: 'Password123!' }, 'This password is too common.'],
        ['passwords differ', { confirm: ADMIN_PASSWORD + '!' }, 'The passwords do not match.'],
        ['username without domain', { username: 'admin' }, 'A valid username must be in the format name@domain.'],
        ['empty full name', { name: '   ' }, 'Enter the full name.'],
        ['bad e-mail', { email: 'not-an-address' }, 'Enter a valid e-mail address.'],
      ]
      for (const [name, change, message] of cases) {
        const { res } = await submitSetup(app, token, { ...FORM, ...change })
        t.equal(res.statusCode, 422, name)
        t.match(res.body, message, `${name}: the reason is shown`)
        const typed = change.name === undefined ? 'value="Ada Lovelace"' : 'value="ada.lovelace@mail.example"'
        t.match(res.body, typed, `${name}: the form keeps what was typed`)
        t.notMatch(res.body, ADMIN_PASSWORD, `${name}: but never the password`)
        t.same(await counts(app), { users: 0, domains: 0 }, `${name}: nothing created`)
      }
      t.equal((await submitSetup(app, token)).res.statusCode, 303, 'the link still works after mistakes')
    })

    t.test('a link made before the first user existed cannot add another Administrator', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const token = tokenOf(await newSetupLink(app))
      await createUser(app, { username: 'first@msp.example' })
      const { res } = await submitSetup(app, token, { ...FORM, username: 'second@other.example' })
      t.ok(res.statusCode === 410 || res.statusCode === 422, `refused (${res.statusCode})`)
      const users = await app.db.selectFrom('users').select('username').execute()
      t.same(users.map((u) => u.username), ['first@msp.example'])
      t.notOk(
        (await app.db.selectFrom('approved_domains').select('domain').execute()).some((d) => d.domain === 'other.example'),
        'the other domain is not approved',
      )
    })

    t.test('the setup form needs its CSRF token', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const token = tokenOf(await newSetupLink(app))
      const res = await app.inject({ method: 'POST', url: '/setup', payload: { token, ...FORM } })
      t.equal(res.statusCode, 403)
      t.same(await counts(app), { users: 0, domains: 0 })
    })

    t.test('first start without MSSP_ADMIN_*: prints a working setup link', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const lines: string[] = []
      await bootstrapFirstAdministrator(app, (line) => lines.push(line))
      const link = lines.join('\n').match(/http:\/\/portal\.test\/setup\?token=[A-Za-z0-9_-]+/)?.[0]
      t.ok(link, `a link is printed:\n${lines.join('\n')}`)
      t.equal((await new Client(app).get(link!.replace('http://portal.test', ''))).statusCode, 200, 'the printed link opens the form')
      await createUser(app)
      const later: string[] = []
      await bootstrapFirstAdministrator(app, (line) => later.push(line))
      t.same(later, [], 'nothing printed once a user exists')
    })

    t.test('MSSP_ADMIN_USERNAME/PASSWORD create the Administrator unattended, with no link', async (t) => {
      const { app } = await buildTestApp(t, dialect, { MSSP_ADMIN_USERNAME: 'Root@Corp.example', MSSP_ADMIN_PASSWORD: ADMIN_PASSWORD })
      const lines: string[] = []
      await bootstrapFirstAdministrator(app, (line) => lines.push(line))
      t.same(lines, [], 'no setup link printed')
      t.equal((await app.db.selectFrom('one_time_codes').selectAll().execute()).length, 0, 'and none made')
      const users = await app.db.selectFrom('users').selectAll().execute()
      t.equal(users.length, 1)
      t.equal(users[0]!.username, 'root@corp.example')
      t.equal(users[0]!.role, 64)
      t.same((await app.db.selectFrom('approved_domains').select('domain').execute()).map((d) => d.domain), ['corp.example'])
      t.equal((await new Client(app).signIn('root@corp.example', ADMIN_PASSWORD)).statusCode, 303, 'can sign in')
      await bootstrapFirstAdministrator(app, (line) => lines.push(line))
      t.equal((await app.db.selectFrom('users').selectAll().execute()).length, 1, 'a restart creates nothing more')
    })

    t.test('a weak MSSP_ADMIN_PASSWORD stops the start, naming the variable', async (t) => {
      const { app } = await buildTestApp(t, dialect, { MSSP_ADMIN_USERNAME: 'root@corp.example', MSSP_ADMIN_PASSWORD: 'admin' })
      const lines: string[] = []
      await t.rejects(bootstrapFirstAdministrator(app, (line) => lines.push(line)), /MSSP_ADMIN_PASSWORD: Passwords must be at least 12 characters/)
      t.same(lines, [])
      t.same(await counts(app), { users: 0, domains: 0 })
    })

    t.test('a bad MSSP_ADMIN_USERNAME stops the start, naming the variable', async (t) => {
      const { app } = await buildTestApp(t, dialect, { MSSP_ADMIN_USERNAME: 'root', MSSP_ADMIN_PASSWORD: ADMIN_PASSWORD })
      await t.rejects(bootstrapFirstAdministrator(app, () => {}), /MSSP_ADMIN_USERNAME: A valid username must be in the format name@domain/)
      t.same(await counts(app), { users: 0, domains: 0 })
    })
  })
}
