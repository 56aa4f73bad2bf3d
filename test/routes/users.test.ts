import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { User } from '../../src/db/schema.ts'
import { type Tap, apiKeysFor, NEW_PASSWORD, Client, PASSWORD, assign, buildTestApp, createAccount, createUser, dialects } from '../helper.ts'
import { uuid } from '../../src/lib/tokens.ts'

/** A form post with repeated fields (`account` once per assigned account), as a browser sends it. */
async function postPairs(c: Client, url: string, pairs: Array<[string, string]>): Promise<LightMyRequestResponse> {
  return c.app.inject({
    method: 'POST',
    url,
    payload: new URLSearchParams([['_csrf', c.csrf], ...pairs]).toString(),
    headers: { ...c.headers(), 'content-type': 'application/x-www-form-urlencoded' },
  })
}

async function countUsers(app: FastifyInstance): Promise<number> {
  return Number((await app.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)
}

async function userRow(app: FastifyInstance, id: number) {
  return app.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

async function assignedIds(app: FastifyInstance, userId: number): Promise<number[]> {
  return (await app.db.selectFrom('user_accounts').select('account_id').where('user_id', '=', userId).orderBy('account_id').execute()).map((r) => r.account_id)
}

const keysFor = async (app: FastifyInstance, user: User): Promise<string> => (await apiKeysFor(app, user)).header

/** The names in the Accounts page's table. */
function accountNames(body: string): string[] {
  return [...body.matchAll(/<td>(Acme|Bluefin|Cedar)[^<]*<\/td>/g)].map((m) => m[0].slice(4, -5)).sort()
}

for (const dialect of dialects) {
  t.test(`${dialect}: the Users pages`, async (t) => {
    async function setup(t: Tap) {
      const { app } = await buildTestApp(t, dialect)
      const admin = await createUser(app, { role: 64, name: 'Ada Admin', username: 'ada@example.com' })
      const basic = await createUser(app, { role: 16, name: 'Bob Basic', username: 'bob@example.com' })
      const acme = await createAccount(app, { container_name: 'Acme Logistics' })
      const bluefin = await createAccount(app, { container_name: 'Bluefin Capital' })
      const cedar = await createAccount(app, { container_name: 'Cedar Health' })
      await assign(app, basic.id, [acme.id])
      const a = new Client(app)
      await a.signIn(admin.username)
      await a.get('/users')
      return { app, admin, basic, acme, bluefin, cedar, a }
    }

    t.test('only Administrators reach the Users pages', async (t) => {
      const { app, basic, admin } = await setup(t)
      const b = new Client(app)
      await b.signIn(basic.username)
      await b.get('/accounts')
      const pages: Array<[string, string]> = [
        ['GET', '/users'], ['GET', '/users/new'], ['POST', '/users/new'], ['GET', `/users/${admin.uuid}/edit`], ['POST', `/users/${admin.uuid}/edit`],
        ['GET', `/users/${admin.uuid}/disable`], ['POST', `/users/${admin.uuid}/disable`], ['POST', `/users/${admin.uuid}/enable`], ['POST', `/users/${admin.uuid}/unlock`],
        ['POST', `/users/${admin.uuid}/reset-2fa`], ['GET', `/users/${admin.uuid}/delete`], ['POST', `/users/${admin.uuid}/delete`], ['GET', `/users/${admin.uuid}/keys`],
        ['POST', `/users/${admin.uuid}/keys`], ['POST', `/users/${admin.uuid}/assist`], ['GET', '/users/assign-search'],
      ]
      for (const [method, url] of pages) {
        const res = method === 'GET' ? await b.get(url) : await b.post(url, { name: 'X', role: '64' })
        t.equal(res.statusCode, 403, `${method} ${url}`)
      }
      t.match(await userRow(app, admin.id), { enabled: 1, role: 64 }, 'nothing changed')
      const anon = await app.inject({ url: '/users' })
      t.equal(anon.statusCode, 303, 'GET /users answers 303')
      t.match(anon.headers.location, /^\/login/, 'GET /users redirects to /^\\/login/')
    })

    t.test('the users table: labels, tags, search and paging', async (t) => {
      const { app, basic, a } = await setup(t)
      await createUser(app, { role: 32, name: 'Dora Disabled', username: 'dora@example.com', enabled: 0 })
      await createUser(app, { role: 24, name: 'Lou Locked', username: 'lou@example.com', locked_until: Date.now() + 600_000, failed_login_count: 5, failed_login_total: 7, last_failed_login_at: Date.now() })
      const page = await a.get('/users')
      t.equal(page.statusCode, 200, 'GET /users answers 200')
      for (const label of ['Username', 'Full Name', 'Role', 'Last Login', 'Last Failed Login', 'Failed Attempts', 'Create User', 'Search users']) t.match(page.body, label, label)
      t.match(page.body, '4 users', 'the answer to GET /users shows \'4 users\'')
      t.match(page.body, 'Bob Basic', 'the answer to GET /users shows \'Bob Basic\'')
      t.match(page.body, /dora@example\.com<\/a>\s*<span class="tag tag-grey">Disabled<\/span>/, 'Disabled tag')
      t.match(page.body, /lou@example\.com<\/a>\s*<span class="tag tag-red">Locked<\/span>/, 'Locked tag')
      t.match(page.body, /<td class="num">7<\/td>/, 'failed attempts')
      t.match(page.body, 'aria-label="Unlock lou@example.com"', 'the answer to GET /users shows \'aria-label="Unlock lou@example.com"\'')
      t.notMatch(page.body, 'aria-label="Disable ada@example.com"', 'no one disables themselves')
      t.notMatch(page.body, 'aria-label="Assist ada@example.com"', 'the answer to GET /users does not show \'aria-label="Assist ada@example.com"\'')
      t.match(page.body, `aria-label="Assist ${basic.username}"`, `the answer to GET /users shows aria-label="Assist ${basic.username}"`)
      t.match(page.body, 'aria-label="Enable dora@example.com"', 'the answer to GET /users shows \'aria-label="Enable dora@example.com"\'')
      t.match(page.body, 'aria-label="Delete dora@example.com"', 'the answer to GET /users shows \'aria-label="Delete dora@example.com"\'')
      t.notMatch(page.body, `aria-label="Delete ${basic.username}"`, 'only disabled users can be deleted')

      const searched = await a.get('/users?q=LOCKED', { 'hx-request': 'true' })
      t.notMatch(searched.body, '<html', 'htmx gets the fragment')
      t.match(searched.body, 'lou@example.com', 'the answer to GET /users?q=LOCKED shows \'lou@example.com\'')
      t.notMatch(searched.body, 'bob@example.com', 'the answer to GET /users?q=LOCKED does not show \'bob@example.com\'')
      t.match(searched.body, '1 user', 'the answer to GET /users?q=LOCKED shows \'1 user\'')
      t.match((await a.get('/users?q=zzz')).body, 'No users match your search.', 'the answer to GET /users?q=zzz shows \'No users match your search.\'')

      const now = Date.now()
      await app.db.insertInto('users').values(Array.from({ length: 50 }, (_, i) => ({
        uuid: uuid(), username: `paged${String(i).padStart(2, '0')}@example.com`, name: `Paged ${String(i).padStart(2, '0')}`, email: null, password_hash: 'x', role: 16, enabled: 1,
        locked_until: null, last_login_at: null, last_failed_login_at: null, last_login_attempt_at: null, password_changed_at: now, created_at: now, updated_at: now,
      }))).execute()
      const first = await a.get('/users')
      t.match(first.body, '54 users', 'the answer to GET /users shows \'54 users\'')
      t.match(first.body, 'Page 1 of 2', 'the answer to GET /users shows \'Page 1 of 2\'')
      t.match(first.body, 'rel="next"', 'the answer to GET /users shows \'rel="next"\'')
      const second = await a.get('/users?page=2')
      t.match(second.body, 'Page 2 of 2', 'the answer to GET /users?page=2 shows \'Page 2 of 2\'')
      const onFirst = (first.body.match(/aria-label="Edit /g) ?? []).length
      const onSecond = (second.body.match(/aria-label="Edit /g) ?? []).length
      t.same([onFirst, onSecond], [50, 4], '[onFirst, onSecond] is [50, 4]')
      const sorted = await a.get('/users?sort=name&dir=desc')
      t.ok(sorted.body.indexOf('Paged 49') < sorted.body.indexOf('Paged 48'), 'sorted by name, descending')
    })

    t.test('Create User: the form, assignments from repeated account fields', async (t) => {
      const { app, acme, bluefin, a } = await setup(t)
      const form = await a.get('/users/new')
      t.equal(form.statusCode, 200, 'GET /users/new answers 200')
      for (const label of ['Create User', 'Full Name', 'Username', 'Email', 'Password', 'Verify Password', 'Role', 'View guide to Role Permissions', 'Accounts', 'Assign Accounts', '>Create</button>']) t.match(form.body, label, label)
      for (const role of ['Basic', 'VM Scan Operator', 'VM Standard', 'VM Scan Manager', 'Administrator']) t.match(form.body, `>${role}</option>`, `the answer to GET /users/new shows >${role}</option>`)
      t.match(form.body, 'Acme Logistics', 'accounts to assign')
      const res = await postPairs(a, '/users/new', [['name', 'Carol Standard'], ['username', 'Carol@Example.com'], ['email', 'carol@mail.example.com'], ['password', 'Zebra42!'], ['confirm', 'Zebra42!'], ['role', '32'], ['account', acme.uuid], ['account', bluefin.uuid]])
      t.equal(res.statusCode, 303, 'Create User with assignments redirects')
      t.equal(res.headers.location, '/users', 'to the Users page')
      const carol = await app.db.selectFrom('users').selectAll().where('username', '=', 'carol@example.com').executeTakeFirstOrThrow()
      t.match(carol, { name: 'Carol Standard', email: 'carol@mail.example.com', role: 32, enabled: 1 }, 'Carol is stored with the form\'s fields')
      t.same(await assignedIds(app, carol.id), [acme.id, bluefin.id].sort((x, y) => x - y), 'Carol is assigned the two accounts posted')
      t.match((await a.get('/users')).body, 'User carol@example.com created.', 'the answer to GET /users shows \'User carol@example.com created.\'')
      const c = new Client(app)
      t.equal((await c.signIn('carol@example.com', 'Zebra42!')).headers.location, '/accounts', 'the admin-set rule: 8 characters, three classes')
      t.same(accountNames((await c.get('/accounts')).body), ['Acme Logistics', 'Bluefin Capital'], 'accountNames((c.get(\'/accounts\')).body) is [\'Acme Logistics\', \'Bluefin Capital\']')

      await a.get('/users/new')
      const boss = await postPairs(a, '/users/new', [['name', 'Boss'], ['username', 'boss@example.com'], ['password', 'Zebra42!'], ['confirm', 'Zebra42!'], ['role', '64'], ['account', acme.uuid]])
      t.equal(boss.statusCode, 303, 'an Administrator is created even with an account posted')
      const bossRow = await app.db.selectFrom('users').select('id').where('username', '=', 'boss@example.com').executeTakeFirstOrThrow()
      t.same(await assignedIds(app, bossRow.id), [], 'an Administrator has no assignments')
      const event = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.create').where('target_name', '=', 'carol@example.com').executeTakeFirstOrThrow()
      t.match(event, { actor_name: 'ada@example.com' }, 'event matches { actor_name: \'ada@example.com\' }')
    })

    t.test('Create User refuses bad input with 422 and creates nothing', async (t) => {
      const { app, a } = await setup(t)
      const before = await countUsers(app)
      const base = { name: 'Eve', username: 'eve@example.com', email: '', password: 'Zebra42!', confirm: 'Zebra42!', role: '16' }
      const cases: Array<[Partial<typeof base>, string]> = [
        [{ username: 'eve@unapproved.example' }, 'The domain unapproved.example is not approved for this portal'],
        [{ username: 'eve' }, 'A valid username must be in the format name@domain.'],
        [{ username: 'bob@example.com' }, 'A user with this username already exists.'],
        [{ username: 'BOB@example.com' }, 'A user with this username already exists.'],
        [{ password: 'Zebra4!', confirm: 'Zebra4!' }, 'at least 8 characters long and contain at least three'],
        [{ password: 'zebraherd', confirm: 'zebraherd' }, 'at least 8 characters long and contain at least three'],
        [{ password: 'Password1', confirm: 'Password1' }, 'too common'],
        [{ confirm: 'Zebra42?' }, 'The passwords do not match.'],
        [{ name: '' }, 'Enter the full name.'],
        [{ email: 'not-mail' }, 'Enter a valid e-mail address.'],
        [{ role: '17' }, 'Select a role.'],
      ]
      for (const [change, message] of cases) {
        await a.get('/users/new')
        const res = await a.post('/users/new', { ...base, ...change })
        t.equal(res.statusCode, 422, JSON.stringify(change))
        t.match(res.body, message, `the answer to POST /users/new shows ${message}`)
        t.match(res.body, 'Please correct the highlighted fields.', 'the answer to POST /users/new shows \'Please correct the highlighted fields.\'')
      }
      t.equal(await countUsers(app), before, 'nothing created')
      await a.get('/users/new')
      const gone = await postPairs(a, '/users/new', [...Object.entries(base), ['account', uuid()]] as Array<[string, string]>)
      t.equal(gone.statusCode, 422, 'an account that does not exist')
      t.match(gone.body, 'no longer exist', 'the page says an account no longer exists')
      t.equal(await countUsers(app), before, 'the refused create wrote no user')
    })

    t.test('Edit User: password optional; role and assignments apply on the user\'s next request', async (t) => {
      const { app, basic, acme, bluefin, cedar, a } = await setup(t)
      const b = new Client(app)
      await b.signIn(basic.username)
      t.same(accountNames((await b.get('/accounts')).body), ['Acme Logistics'], 'accountNames((b.get(\'/accounts\')).body) is [\'Acme Logistics\']')
      t.equal((await b.get('/users')).statusCode, 403, 'GET /users answers 403')

      const form = await a.get(`/users/${basic.uuid}/edit`)
      t.equal(form.statusCode, 200, `GET /users/${basic.uuid}/edit answers 200`)
      t.match(form.body, 'Edit User', `the answer to GET /users/${basic.uuid}/edit shows 'Edit User'`)
      t.match(form.body, 'value="Bob Basic"', `the answer to GET /users/${basic.uuid}/edit shows 'value="Bob Basic"'`)
      t.match(form.body, 'Leave empty to keep the current password.', `the answer to GET /users/${basic.uuid}/edit shows 'Leave empty to keep the current password.'`)
      t.match(form.body, /name="account" value="[^"]+" checked class="keep-assigned"> Acme Logistics/, `the answer to GET /users/${basic.uuid}/edit shows /name="account" value="[^"]+" checked class="keep-…/`)
      t.match(form.body, 'Generate API Keys', `the answer to GET /users/${basic.uuid}/edit shows 'Generate API Keys'`)
      t.equal((await a.get(`/users/${basic.id}/edit`)).statusCode, 200, 'the integer id works too')
      t.equal((await a.get(`/users/${uuid()}/edit`)).statusCode, 404, `GET /users/${uuid()}/edit answers 404`)

      const save = await postPairs(a, `/users/${basic.uuid}/edit`, [['name', 'Bob Renamed'], ['email', ''], ['password', ''], ['confirm', ''], ['role', '32'], ['account', bluefin.uuid], ['account', cedar.uuid]])
      t.equal(save.statusCode, 303, 'Edit User saves')
      t.match(await userRow(app, basic.id), { name: 'Bob Renamed', role: 32 }, 'the name and role are changed')
      t.same(accountNames((await b.get('/accounts')).body), ['Bluefin Capital', 'Cedar Health'], 'the very next request sees the new assignments')
      t.equal((await new Client(app).signIn(basic.username, PASSWORD)).headers.location, '/accounts', 'the password is unchanged')

      await a.get(`/users/${basic.uuid}/edit`)
      const promote = await postPairs(a, `/users/${basic.uuid}/edit`, [['name', 'Bob Renamed'], ['email', ''], ['password', ''], ['confirm', ''], ['role', '64'], ['account', acme.uuid]])
      t.equal(promote.statusCode, 303, 'the promotion saves')
      t.same(await assignedIds(app, basic.id), [], 'becoming an Administrator clears assignments')
      t.equal((await b.get('/users')).statusCode, 200, 'the next request has the new role')
      t.same(accountNames((await b.get('/accounts')).body), ['Acme Logistics', 'Bluefin Capital', 'Cedar Health'], 'accountNames((b.get(\'/accounts\')).body) is [\'Acme Logistics\', \'Bluefin Capital\', \'Cedar Health\']')

      await a.get(`/users/${basic.uuid}/edit`)
      const weak = await a.post(`/users/${basic.uuid}/edit`, { name: 'Bob Renamed', email: '', password: 'weak', confirm: 'weak', role: '64' })
      t.equal(weak.statusCode, 422, 'a weak password is refused')
      t.match(weak.body, 'at least 8 characters', 'the page states the rule')
      await a.get(`/users/${basic.uuid}/edit`)
      const withPassword = await a.post(`/users/${basic.uuid}/edit`, { name: 'Bob Renamed', email: '', password: NEW_PASSWORD, confirm: NEW_PASSWORD, role: '16' })
      t.equal(withPassword.statusCode, 303, 'a password set by an Administrator saves')
      t.equal((await b.get('/accounts')).statusCode, 303, 'a password set by an Administrator ends the user\'s sessions')
      t.equal((await new Client(app).signIn(basic.username, NEW_PASSWORD)).headers.location, '/accounts', 'the user signs in with it')
      const events = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.update').orderBy('created_at').execute()
      t.equal(events.length, 3, 'three edits, three audits')
      t.match(JSON.parse(events[0]!.fields), { role: 'VM Standard', role_changed: true, password_changed: false, accounts: 2 }, 'the first audit records the role change and the accounts')
    })

    t.test('Disable User window: the user\'s session ends at once; Enable brings them back', async (t) => {
      const { app, basic, a } = await setup(t)
      const b = new Client(app)
      await b.signIn(basic.username)
      t.equal((await b.get('/accounts')).statusCode, 200, 'Bob is signed in before')
      const bKeys = await keysFor(app, basic)

      const window = await a.get(`/users/${basic.uuid}/disable`)
      t.equal(window.statusCode, 200, `GET /users/${basic.uuid}/disable answers 200`)
      t.match(window.body, 'Disable User', `the answer to GET /users/${basic.uuid}/disable shows 'Disable User'`)
      t.match(window.body, `Disable <strong>${basic.username}</strong>?`, `the answer to GET /users/${basic.uuid}/disable shows Disable <strong>${basic.username}</strong>?`)
      const plane = await a.get(`/users/${basic.uuid}/disable`, { 'hx-request': 'true' })
      t.notMatch(plane.body, '<html', 'a plane for htmx')
      t.match(plane.body, 'role="alertdialog"', `the answer to GET /users/${basic.uuid}/disable shows 'role="alertdialog"'`)
      const done = await a.post(`/users/${basic.uuid}/disable`)
      t.equal(done.statusCode, 200, `POST /users/${basic.uuid}/disable answers 200`)
      t.match(done.body, 'User disabled successfully.', `the answer to POST /users/${basic.uuid}/disable shows 'User disabled successfully.'`)
      t.equal((await userRow(app, basic.id))!.enabled, 0, 'Bob is disabled in the database')
      t.match((await a.get('/users')).body, /bob@example\.com<\/a>\s*<span class="tag tag-grey">Disabled<\/span>/, 'the answer to GET /users shows /bob@example\\.com<\\/a>\\s*<span class="tag tag-grey…/')

      const next = await b.get('/accounts')
      t.equal(next.statusCode, 303, 'their Client is signed out')
      t.match(next.headers.location, /^\/login\?m=expired/, 'GET /accounts redirects to /^\\/login\\?m=expired/')
      t.equal((await app.db.selectFrom('sessions').select('id').where('user_id', '=', basic.id).execute()).length, 0, 'their sessions are gone')
      t.equal((await b.get('/my-account')).statusCode, 303, 'and stay signed out')
      t.equal((await app.inject({ url: '/api/session', headers: { 'x-apikeys': bKeys } })).statusCode, 401, 'their API keys fail')
      t.equal((await new Client(app).signIn(basic.username)).statusCode, 401, 'they cannot sign in')

      const enableWindow = await a.get(`/users/${basic.uuid}/enable`)
      t.match(enableWindow.body, 'Enable User', `the answer to GET /users/${basic.uuid}/enable shows 'Enable User'`)
      const enabled = await a.post(`/users/${basic.uuid}/enable`)
      t.match(enabled.body, 'User enabled successfully.', `the answer to POST /users/${basic.uuid}/enable shows 'User enabled successfully.'`)
      t.equal((await userRow(app, basic.id))!.enabled, 1, 'Bob is enabled in the database')
      t.equal((await new Client(app).signIn(basic.username)).headers.location, '/accounts', 'Bob signs in again')
      const actions = (await app.db.selectFrom('audit_events').select(['action', 'actor_name']).where('target_id', '=', basic.uuid).where('action', 'like', 'user.%').orderBy('created_at').execute())
      t.same(actions.map((e) => [e.action, e.actor_name]), [['user.disable', 'ada@example.com'], ['user.enable', 'ada@example.com']], 'the disable and the enable are audited by the Administrator')
    })

    t.test('no one can disable themselves; the last enabled Administrator cannot be demoted', async (t) => {
      const { app, admin, a } = await setup(t)
      const self = await a.post(`/users/${admin.uuid}/disable`)
      t.equal(self.statusCode, 409, `POST /users/${admin.uuid}/disable answers 409`)
      t.match(self.body, 'You cannot disable yourself.', `the answer to POST /users/${admin.uuid}/disable shows 'You cannot disable yourself.'`)
      await a.get(`/users/${admin.uuid}/edit`)
      const demote = await a.post(`/users/${admin.uuid}/edit`, { name: 'Ada Admin', email: '', password: '', confirm: '', role: '16' })
      t.equal(demote.statusCode, 422, `POST /users/${admin.uuid}/edit answers 422`)
      t.match(demote.body, 'This is the last enabled Administrator: the portal needs at least one.', `the answer to POST /users/${admin.uuid}/edit shows 'This is the last enabled Administrator: the portal…'`)
      t.match(await userRow(app, admin.id), { role: 64, enabled: 1 }, 'userRow(app, admin.id) matches { role: 64, enabled: 1 }')

      // With a second Administrator, the first may be demoted; the second is then the last.
      const otto = await createUser(app, { role: 64, name: 'Otto Admin', username: 'otto@example.com' })
      const o = new Client(app)
      await o.signIn(otto.username)
      await o.get('/users')
      t.equal((await o.post(`/users/${otto.uuid}/disable`)).statusCode, 409, 'Otto cannot disable Otto')
      await o.get(`/users/${admin.uuid}/edit`)
      t.equal((await o.post(`/users/${admin.uuid}/edit`, { name: 'Ada Admin', email: '', password: '', confirm: '', role: '40' })).statusCode, 303, `POST /users/${admin.uuid}/edit answers 303`)
      await o.get(`/users/${otto.uuid}/edit`)
      const last = await o.post(`/users/${otto.uuid}/edit`, { name: 'Otto Admin', email: '', password: '', confirm: '', role: '40' })
      t.equal(last.statusCode, 422, `POST /users/${otto.uuid}/edit answers 422`)
      t.match(last.body, 'last enabled Administrator', `the answer to POST /users/${otto.uuid}/edit shows 'last enabled Administrator'`)
      t.match(await userRow(app, otto.id), { role: 64 }, 'userRow(app, otto.id) matches { role: 64 }')
    })

    t.test('Unlock a locked user', async (t) => {
      const { app, basic, a } = await setup(t)
      await app.db.updateTable('users').set({ locked_until: Date.now() + 600_000, failed_login_count: 6 }).where('id', '=', basic.id).execute()
      t.equal((await new Client(app).signIn(basic.username)).statusCode, 401, 'locked')
      t.match((await a.get('/users')).body, 'aria-label="Unlock bob@example.com"', 'the answer to GET /users shows \'aria-label="Unlock bob@example.com"\'')
      const res = await a.post(`/users/${basic.uuid}/unlock`)
      t.equal(res.statusCode, 303, `POST /users/${basic.uuid}/unlock answers 303`)
      t.match(await userRow(app, basic.id), { locked_until: null, failed_login_count: 0 }, 'userRow(app, basic.id) matches { locked_until: null, failed_login_count: 0 }')
      const list = await a.get('/users')
      t.match(list.body, 'bob@example.com is unlocked.', 'the answer to GET /users shows \'bob@example.com is unlocked.\'')
      t.notMatch(list.body, 'tag-red">Locked', 'the answer to GET /users does not show \'tag-red">Locked\'')
      t.equal((await new Client(app).signIn(basic.username)).headers.location, '/accounts', 'signing in redirects to \'/accounts\'')
      t.ok(await app.db.selectFrom('audit_events').select('id').where('action', '=', 'user.unlock').where('target_id', '=', basic.uuid).executeTakeFirst(), 'the unlock is audited')
    })

    t.test('Reset 2FA removes the user\'s second factors', async (t) => {
      const { app, basic, a } = await setup(t)
      const now = Date.now()
      await app.db.insertInto('two_factor').values({ user_id: basic.id, sms_phone: '+15555550123', pending_phone: null, email_enabled: 1, totp_secret: null, pending_totp_secret: null, totp_last_step: null, updated_at: now }).execute()
      await app.db.insertInto('recovery_codes').values({ id: uuid(), user_id: basic.id, code_hash: 'x', used_at: null, created_at: now }).execute()
      const list = await a.get('/users')
      t.match(list.body, 'aria-label="Reset two-factor authentication of bob@example.com"', 'the answer to GET /users shows \'aria-label="Reset two-factor authentication of bob…\'')
      const window = await a.get(`/users/${basic.uuid}/reset-2fa`)
      t.match(window.body, 'Reset Two-Factor Authentication', `the answer to GET /users/${basic.uuid}/reset-2fa shows 'Reset Two-Factor Authentication'`)
      const done = await a.post(`/users/${basic.uuid}/reset-2fa`)
      t.equal(done.statusCode, 200, `POST /users/${basic.uuid}/reset-2fa answers 200`)
      t.match(done.body, 'Two-factor authentication was reset.', `the answer to POST /users/${basic.uuid}/reset-2fa shows 'Two-factor authentication was reset.'`)
      t.notOk(await app.db.selectFrom('two_factor').selectAll().where('user_id', '=', basic.id).executeTakeFirst(), 'the factors are gone')
      t.equal((await app.db.selectFrom('recovery_codes').selectAll().where('user_id', '=', basic.id).execute()).length, 0, 'and the recovery codes')
      t.equal((await new Client(app).signIn(basic.username)).headers.location, '/accounts', 'password only now')
      t.ok(await app.db.selectFrom('audit_events').select('id').where('action', '=', 'user.two_factor_reset').where('target_id', '=', basic.uuid).executeTakeFirst(), 'the reset is audited')
    })

    t.test('Delete User: only disabled users, Transfer User Objects, the confirmation, atomic', async (t) => {
      const { app, admin, basic, a } = await setup(t)
      const heir = await createUser(app, { role: 32, name: 'Hal Heir', username: 'heir@example.com' })
      const now = Date.now()
      const made = await createAccount(app, { container_name: 'Made By Bob', created_by: basic.id })
      const logo = await app.db.insertInto('logos').values({ uuid: uuid(), name: 'Bob logo', filename: 'bob.png', png: Buffer.from([1, 2, 3]), width: 10, height: 10, created_by: basic.id, created_at: now, updated_at: now }).returning('id').executeTakeFirstOrThrow()
      await app.db.insertInto('saved_searches').values({ uuid: uuid(), user_id: basic.id, name: 'Mine', query: 'q=acme', created_at: now }).execute()

      const enabled = await a.get(`/users/${basic.uuid}/delete`)
      t.equal(enabled.statusCode, 409, `GET /users/${basic.uuid}/delete answers 409`)
      t.match(enabled.body, 'Disable the user before deleting them.', `the answer to GET /users/${basic.uuid}/delete shows 'Disable the user before deleting them.'`)
      t.notMatch(enabled.body, 'Select New Object Owner', `the answer to GET /users/${basic.uuid}/delete does not show 'Select New Object Owner'`)
      await a.get(`/users/${basic.uuid}/disable`)
      await a.post(`/users/${basic.uuid}/disable`)

      const page = await a.get(`/users/${basic.uuid}/delete`)
      t.equal(page.statusCode, 200, `GET /users/${basic.uuid}/delete answers 200`)
      for (const label of ['Delete User', 'Transfer User Objects', 'Select New Object Owner', 'Saved Searches', 'Permanently deleted', 'cannot be recovered']) t.match(page.body, label, label)
      t.match(page.body, `<option value="${heir.uuid}">heir@example.com (Hal Heir)</option>`, 'the new owner can be chosen among the enabled users')
      t.notMatch(page.body, `<option value="${basic.uuid}">`, 'not the user themself')

      const none = await a.post(`/users/${basic.uuid}/delete`, { successor: '' })
      t.equal(none.statusCode, 422, `POST /users/${basic.uuid}/delete answers 422`)
      t.match(none.body, 'Select the new owner of the user’s objects.', `the answer to POST /users/${basic.uuid}/delete shows 'Select the new owner of the user’s objects.'`)
      const confirm = await a.post(`/users/${basic.uuid}/delete`, { successor: heir.uuid })
      t.equal(confirm.statusCode, 200, `POST /users/${basic.uuid}/delete answers 200`)
      t.match(confirm.body, `Delete ${basic.username}?`, `the answer to POST /users/${basic.uuid}/delete shows Delete ${basic.username}?`)
      t.match(confirm.body, 'Their objects move to <strong>heir@example.com</strong>', `the answer to POST /users/${basic.uuid}/delete shows 'Their objects move to <strong>heir@example.com</strong>'`)
      t.match(confirm.body, 'name="step" value="delete"', `the answer to POST /users/${basic.uuid}/delete shows 'name="step" value="delete"'`)
      t.ok(await userRow(app, basic.id), 'the confirmation deletes nothing')

      // The successor is disabled between the confirmation and Delete: nothing changes.
      await app.db.updateTable('users').set({ enabled: 0 }).where('id', '=', heir.id).execute()
      const invalid = await a.post(`/users/${basic.uuid}/delete`, { successor: heir.uuid, step: 'delete' })
      t.equal(invalid.statusCode, 422, `POST /users/${basic.uuid}/delete answers 422`)
      t.ok(await userRow(app, basic.id), 'not deleted')
      t.equal((await app.db.selectFrom('accounts').select('created_by').where('id', '=', made.id).executeTakeFirstOrThrow()).created_by, basic.id, 'objects not moved')
      t.equal((await app.db.selectFrom('saved_searches').selectAll().where('user_id', '=', basic.id).execute()).length, 1, 'saved searches kept')
      for (const successor of [uuid(), basic.uuid, 'garbage']) {
        t.equal((await a.post(`/users/${basic.uuid}/delete`, { successor, step: 'delete' })).statusCode, 422, successor)
      }
      await app.db.updateTable('users').set({ enabled: 1 }).where('id', '=', heir.id).execute()

      const res = await a.post(`/users/${basic.uuid}/delete`, { successor: heir.uuid, step: 'delete' })
      t.equal(res.statusCode, 303, `POST /users/${basic.uuid}/delete answers 303`)
      t.notOk(await userRow(app, basic.id), 'deleted')
      t.equal((await app.db.selectFrom('accounts').select('created_by').where('id', '=', made.id).executeTakeFirstOrThrow()).created_by, heir.id, `the accounts row's created_by is ${heir.id}`)
      t.equal((await app.db.selectFrom('logos').select('created_by').where('id', '=', logo.id).executeTakeFirstOrThrow()).created_by, heir.id, `the logos row's created_by is ${heir.id}`)
      t.equal((await app.db.selectFrom('saved_searches').selectAll().where('user_id', '=', basic.id).execute()).length, 0, 'the saved_searches rows\' count is 0')
      const list = await a.get('/users')
      t.match(list.body, `User ${basic.username} deleted; their objects now belong to the new owner.`, 'the flash says the user was deleted and their objects moved')
      t.notMatch(list.body, `aria-label="Edit ${basic.username}"`, `the answer to GET /users does not show aria-label="Edit ${basic.username}"`)
      const event = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.delete').executeTakeFirstOrThrow()
      t.match(event, { actor_name: admin.username, target_name: basic.username }, 'event matches { actor_name: admin.username, target_name: basic.username }')
      const kept = await app.db.selectFrom('audit_events').selectAll().where('target_name', '=', basic.username).where('action', '=', 'user.disable').executeTakeFirstOrThrow()
      t.equal(kept.target_name, basic.username, 'the audit log keeps the name')
      t.equal((await a.get(`/users/${basic.uuid}/delete`)).statusCode, 404, `GET /users/${basic.uuid}/delete answers 404`)
    })

    t.test('Generate API Keys for another user: warning, Replace & Generate, shown once', async (t) => {
      const { app, basic, a } = await setup(t)
      const old = await keysFor(app, basic)
      const warning = await a.get(`/users/${basic.uuid}/keys`)
      t.equal(warning.statusCode, 200, `GET /users/${basic.uuid}/keys answers 200`)
      t.match(warning.body, `Any existing API keys of ${basic.username} are replaced when you generate new API keys.`, 'the window warns that the keys are replaced')
      t.match(warning.body, 'Replace &amp; Generate', `the answer to GET /users/${basic.uuid}/keys shows 'Replace &amp; Generate'`)
      t.notMatch(warning.body, 'id="secret-key"', `the answer to GET /users/${basic.uuid}/keys does not show 'id="secret-key"'`)
      const res = await a.post(`/users/${basic.uuid}/keys`)
      t.equal(res.statusCode, 200, `POST /users/${basic.uuid}/keys answers 200`)
      t.match(res.body, 'They are not shown again.', `the answer to POST /users/${basic.uuid}/keys shows 'They are not shown again.'`)
      const accessKey = /id="access-key"[^>]*value="([0-9a-f]{64})"/.exec(res.body)?.[1]
      const secretKey = /id="secret-key"[^>]*value="([0-9a-f]{64})"/.exec(res.body)?.[1]
      t.ok(accessKey && secretKey, 'both keys shown')
      const fresh = await app.inject({ url: '/api/session', headers: { 'x-apikeys': `accessKey=${accessKey};secretKey=${secretKey}` } })
      t.equal(fresh.statusCode, 200, 'GET /api/session answers 200')
      t.equal(fresh.json().uuid, basic.uuid, 'the keys are the user\'s')
      t.equal((await app.inject({ url: '/api/session', headers: { 'x-apikeys': old } })).statusCode, 401, 'old keys fail')
      t.notMatch((await a.get(`/users/${basic.uuid}/keys`)).body, secretKey!, 'never shown again')
      const row = await app.db.selectFrom('api_keys').selectAll().where('user_id', '=', basic.id).executeTakeFirstOrThrow()
      t.not(row.secret_hash, secretKey, 'the secret key is stored only as a hash')
    })

    t.test('Assist: the user\'s view under the blue overlay, audited with both names', async (t) => {
      const { app, admin, basic, a } = await setup(t)
      const start = await a.post(`/users/${basic.uuid}/assist`)
      t.equal(start.statusCode, 303, `POST /users/${basic.uuid}/assist answers 303`)
      t.equal(start.headers.location, '/accounts', `POST /users/${basic.uuid}/assist redirects to '/accounts'`)
      const view = await a.get('/accounts')
      t.same(accountNames(view.body), ['Acme Logistics'], 'the assisted user\'s accounts')
      t.match(view.body, '<body class="signed-in assisting">', 'the answer to GET /accounts shows \'<body class="signed-in assisting">\'')
      t.match(view.body, 'class="assist-overlay"', 'the answer to GET /accounts shows \'class="assist-overlay"\'')
      t.match(view.body, 'You are assisting Bob Basic (bob@example.com)', 'the answer to GET /accounts shows \'You are assisting Bob Basic (bob@example.com)\'')
      t.match(view.body, '<form method="post" action="/assist/stop">', 'the answer to GET /accounts shows \'<form method="post" action="/assist/stop">\'')
      t.match(view.body, 'Stop Assisting</button>', 'the answer to GET /accounts shows \'Stop Assisting</button>\'')

      t.equal((await a.get('/users')).statusCode, 403, 'a Basic user has no Users page')
      t.equal((await a.post('/my-account/password', { current_password: PASSWORD, new_password: 'Another-Pass-123!', confirm_password: 'Another-Pass-123!' })).statusCode, 403, 'POST /my-account/password answers 403')
      t.equal((await a.post('/my-account/api-keys')).statusCode, 403, 'POST /my-account/api-keys answers 403')
      await a.get('/my-account')
      const profile = await a.post('/my-account/profile', { name: 'Bob Helped', email: '' })
      t.equal(profile.statusCode, 303, 'the profile name may be fixed while assisting')
      const event = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.profile_update').executeTakeFirstOrThrow()
      t.match(event, { actor_name: basic.username, actor_user_id: basic.id, assisting_name: admin.username, assisting_user_id: admin.id }, 'a change while assisting is audited with both names')
      const started = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.assist_start').executeTakeFirstOrThrow()
      t.match(started, { actor_name: admin.username, target_name: basic.username }, 'the start of assisting is audited')

      await a.get('/accounts')
      const stop = await a.post('/assist/stop')
      t.equal(stop.statusCode, 303, 'POST /assist/stop answers 303')
      t.equal(stop.headers.location, '/users', 'POST /assist/stop redirects to \'/users\'')
      const back = await a.get('/users')
      t.equal(back.statusCode, 200, 'the Administrator again')
      t.match(back.body, 'You stopped assisting bob@example.com.', 'the answer to GET /users shows \'You stopped assisting bob@example.com.\'')
      t.notMatch(back.body, 'class="assist-overlay"', 'the answer to GET /users does not show \'class="assist-overlay"\'')
      t.same(accountNames((await a.get('/accounts')).body), ['Acme Logistics', 'Bluefin Capital', 'Cedar Health'], 'the Administrator sees every account again')
      const stopped = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.assist_stop').executeTakeFirstOrThrow()
      t.match(stopped, { actor_name: basic.username, assisting_name: admin.username, target_name: basic.username }, 'the stop is audited with both names')
    })

    t.test('Assist refuses yourself, a disabled user, and a second assist', async (t) => {
      const { app, admin, basic, a } = await setup(t)
      const self = await a.post(`/users/${admin.uuid}/assist`)
      t.equal(self.headers.location, '/users', `POST /users/${admin.uuid}/assist redirects to '/users'`)
      t.match((await a.get('/users')).body, 'You cannot assist yourself.', 'the answer to GET /users shows \'You cannot assist yourself.\'')
      const off = await createUser(app, { role: 16, enabled: 0 })
      await a.post(`/users/${off.uuid}/assist`)
      t.match((await a.get('/users')).body, 'You cannot assist a disabled user.', 'the answer to GET /users shows \'You cannot assist a disabled user.\'')
      t.equal((await a.post(`/users/${uuid()}/assist`)).statusCode, 404, `POST /users/${uuid()}/assist answers 404`)

      // Assisting another Administrator (who may reach /users), a second assist is refused.
      const otto = await createUser(app, { role: 64, name: 'Otto Admin', username: 'otto@example.com' })
      await a.post(`/users/${otto.uuid}/assist`)
      t.match((await a.get('/users')).body, 'You are assisting Otto Admin', 'the answer to GET /users shows \'You are assisting Otto Admin\'')
      const again = await a.post(`/users/${basic.uuid}/assist`)
      t.equal(again.headers.location, '/users', `POST /users/${basic.uuid}/assist redirects to '/users'`)
      const page = await a.get('/users')
      t.match(page.body, 'You are already assisting a user. Stop assisting first.', 'the answer to GET /users shows \'You are already assisting a user. Stop assisting first.\'')
      t.match(page.body, 'You are assisting Otto Admin', 'still assisting Otto')
      t.equal((await a.post(`/users/${admin.uuid}/disable`)).statusCode, 409, 'the Administrator behind cannot disable themselves either')
    })

    t.test('Assist ends after the time limit, and when the user is disabled', async (t) => {
      const { app, basic, a } = await setup(t)
      await a.post(`/users/${basic.uuid}/assist`)
      t.match((await a.get('/accounts')).body, 'You are assisting Bob Basic', 'the answer to GET /accounts shows \'You are assisting Bob Basic\'')
      await app.db.updateTable('sessions').set({ assist_started_at: Date.now() - 61 * 60_000 }).where('assist_user_id', '=', basic.id).execute()
      const ended = await a.get('/accounts')
      t.notMatch(ended.body, 'class="assist-overlay"', 'the answer to GET /accounts does not show \'class="assist-overlay"\'')
      t.match(ended.body, 'Assisting ended after 60 minutes.', 'the answer to GET /accounts shows \'Assisting ended after 60 minutes.\'')
      t.same(accountNames(ended.body), ['Acme Logistics', 'Bluefin Capital', 'Cedar Health'], 'the Administrator\'s own view')
      t.equal((await a.get('/users')).statusCode, 200, 'GET /users answers 200')

      await a.post(`/users/${basic.uuid}/assist`)
      await app.db.updateTable('users').set({ enabled: 0 }).where('id', '=', basic.id).execute()
      const off = await a.get('/accounts')
      t.notMatch(off.body, 'class="assist-overlay"', 'the answer to GET /accounts does not show \'class="assist-overlay"\'')
      t.match(off.body, 'Assisting ended.', 'the answer to GET /accounts shows \'Assisting ended.\'')
    })
  })
}
