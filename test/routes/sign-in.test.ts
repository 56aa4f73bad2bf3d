import t from 'tap'
import { Client, PASSWORD, buildTestApp, createUser, dialects } from '../helper.ts'
import { LOCK_AFTER } from '../../src/areas/auth/service.ts'
import { findUserById } from '../../src/areas/auth/repository.ts'

for (const dialect of dialects) {
  t.test(`${dialect}: sign-in`, async (t) => {
    t.test('the Log in page has the guide labels', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const res = await new Client(app).get('/login')
      t.equal(res.statusCode, 200, 'GET /login answers 200')
      for (const label of ['Username', 'Password', 'Remember Me', 'Sign In', 'Forgot Password']) t.match(res.body, label, `the answer to GET /login shows ${label}`)
      t.notMatch(res.body, /Tenable/, 'shows no vendor name')
    })

    t.test('signing in lands on Accounts and records the last login', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app, { name: 'Ada Admin' })
      const client = new Client(app)
      const res = await client.signIn(user.username)
      t.equal(res.statusCode, 303, 'signing in answers 303')
      t.equal(res.headers.location, '/accounts', 'signing in redirects to \'/accounts\'')
      const page = await client.get('/accounts')
      t.equal(page.statusCode, 200, 'GET /accounts answers 200')
      t.match(page.body, '<h1>Accounts</h1>', 'the answer to GET /accounts shows \'<h1>Accounts</h1>\'')
      t.match(page.body, 'Ada Admin', 'the answer to GET /accounts shows \'Ada Admin\'')
      t.equal(page.headers['cache-control'], 'no-store', 'page.headers[\'cache-control\'] is \'no-store\'')
      const after = await findUserById(app.db, user.id)
      t.ok(after!.last_login_at, 'last login recorded')
      t.equal(after!.failed_login_count, 0, 'after.failed_login_count is 0')
    })

    t.test('username is case-insensitive and next= is followed only within the portal', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const client = new Client(app)
      await client.get('/login?next=/help/accounts')
      let res = await client.post('/login', { username: user.username.toUpperCase(), password: PASSWORD, next: '/help/accounts' })
      t.equal(res.headers.location, '/help/accounts', 'POST /login redirects to \'/help/accounts\'')
      const other = new Client(app)
      await other.get('/login')
      res = await other.post('/login', { username: user.username, password: PASSWORD, next: '//evil.example/' })
      t.equal(res.headers.location, '/accounts', 'POST /login redirects to \'/accounts\'')
    })

    t.test('unknown user, wrong password, disabled and locked users get the same answer', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const ok = await createUser(app)
      const disabled = await createUser(app, { enabled: 0 })
      const locked = await createUser(app, { locked_until: Date.now() + 600_000 })
      const cases = [
        { name: 'unknown user', username: 'nobody@example.com', password: PASSWORD },
        { name: 'wrong password', username: ok.username, password: 'Wrong-Password-123' },
        { name: 'disabled user', username: disabled.username, password: PASSWORD },
        { name: 'locked user', username: locked.username, password: PASSWORD },
        { name: 'empty fields', username: '', password: '' },
      ]
      const bodies = new Set<string>()
      for (const c of cases) {
        const client = new Client(app)
        const res = await client.signIn(c.username, c.password)
        t.equal(res.statusCode, 401, c.name)
        t.match(res.body, 'Invalid username or password.', c.name)
        t.notOk(client.cookie.includes('sid'), c.name)
        const accounts = await client.get('/accounts')
        t.equal(accounts.statusCode, 303, `${c.name}: still signed out`)
        bodies.add(res.body.replace(/name="_csrf" value="[^"]+"/, '').replace(/value="[^"]*"/g, ''))
      }
      t.equal(bodies.size, 1, 'the pages differ only in what the user typed')
    })

    t.test('failed attempts are counted and lock the account progressively', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const client = new Client(app)
      for (let i = 1; i < LOCK_AFTER; i++) await client.signIn(user.username, 'Wrong-Password-123')
      let row = await findUserById(app.db, user.id)
      t.equal(row!.failed_login_count, LOCK_AFTER - 1, 'row.failed_login_count is LOCK_AFTER - 1')
      t.equal(row!.failed_login_total, LOCK_AFTER - 1, 'row.failed_login_total is LOCK_AFTER - 1')
      t.ok(row!.last_failed_login_at, 'row.last_failed_login_at')
      t.equal(row!.locked_until, null, 'not locked yet')
      await client.signIn(user.username, 'Wrong-Password-123')
      row = await findUserById(app.db, user.id)
      t.ok(row!.locked_until! > Date.now() + 50_000, 'locked for about a minute')
      t.ok(row!.locked_until! <= Date.now() + 61_000, 'row.locked_until! <= Date.now() + 61_000')
      const right = await client.signIn(user.username, PASSWORD)
      t.equal(right.statusCode, 401, 'the right password is refused while locked')
      await client.signIn(user.username, 'Wrong-Password-123')
      row = await findUserById(app.db, user.id)
      t.ok(row!.locked_until! > Date.now() + 110_000, 'the next failure doubles the lock')
      const events = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'auth.lockout').execute()
      t.equal(events.length, 2, 'events.length is 2')
      // Once the lock has passed, the right password works and clears the count.
      await app.db.updateTable('users').set({ locked_until: Date.now() - 1 }).where('id', '=', user.id).execute()
      const res = await client.signIn(user.username, PASSWORD)
      t.equal(res.statusCode, 303, 'signing in answers 303')
      row = await findUserById(app.db, user.id)
      t.equal(row!.failed_login_count, 0, 'row.failed_login_count is 0')
      t.equal(row!.failed_login_total, LOCK_AFTER + 2, 'row.failed_login_total is LOCK_AFTER + 2')
    })

    t.test('signed out, a page sends to Log in; htmx gets HX-Redirect', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const client = new Client(app)
      let res = await client.get('/accounts')
      t.equal(res.statusCode, 303, 'GET /accounts answers 303')
      t.equal(res.headers.location, '/login?next=%2Faccounts', 'GET /accounts redirects to \'/login?next=%2Faccounts\'')
      res = await client.get('/accounts', { 'hx-request': 'true' })
      t.equal(res.headers['hx-redirect'], '/login', 'res.headers[\'hx-redirect\'] is \'/login\'')
    })

    t.test('Sign Out ends the session row at once', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const client = new Client(app)
      await client.signIn(user.username)
      const stolen = client.cookie
      await client.get('/accounts')
      t.equal((await app.db.selectFrom('sessions').selectAll().execute()).length, 1, 'the sessions rows\' count is 1')
      const res = await client.post('/logout')
      t.equal(res.headers.location, '/login?m=signed-out', 'POST /logout redirects to \'/login?m=signed-out\'')
      t.equal((await app.db.selectFrom('sessions').selectAll().execute()).length, 0, 'the sessions rows\' count is 0')
      const replay = await app.inject({ url: '/accounts', headers: { cookie: stolen } })
      t.equal(replay.statusCode, 303, 'the old cookie no longer works')
      const login = await client.get('/login?m=signed-out')
      t.match(login.body, 'You have signed out.', 'the answer to GET /login?m=signed-out shows \'You have signed out.\'')
    })

    t.test('sessions: idle timeout without Remember Me, none with it, absolute limit for both', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const plain = new Client(app)
      await plain.signIn(user.username)
      const remembered = new Client(app)
      const res = await remembered.signIn(user.username, PASSWORD, true)
      t.notMatch(String(res.headers['set-cookie']), /Max-Age|Expires/i, 'a browser-session cookie even with Remember Me')
      const rows = await app.db.selectFrom('sessions').selectAll().execute()
      t.same(rows.map((r) => r.remember_me).sort(), [0, 1], 'rows.map((r) => r.remember_me).sort() is [0, 1]')
      // 31 minutes of inactivity
      await app.db.updateTable('sessions').set({ last_seen_at: Date.now() - 31 * 60_000 }).execute()
      t.equal((await plain.get('/accounts')).statusCode, 303, 'idle session ended')
      t.equal((await remembered.get('/accounts')).statusCode, 200, 'Remember Me has no idle timeout')
      await app.db.updateTable('sessions').set({ expires_at: Date.now() - 1 }).execute()
      t.equal((await remembered.get('/accounts')).statusCode, 303, 'absolute limit ends it too')
    })

    t.test('last-seen is written at most once a minute', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const client = new Client(app)
      await client.signIn(user.username)
      const setTo = Date.now() - 30_000
      await app.db.updateTable('sessions').set({ last_seen_at: setTo }).execute()
      await client.get('/accounts')
      t.equal((await app.db.selectFrom('sessions').select('last_seen_at').executeTakeFirstOrThrow()).last_seen_at, setTo, `the sessions row's last_seen_at is ${setTo}`)
      await app.db.updateTable('sessions').set({ last_seen_at: Date.now() - 90_000 }).execute()
      await client.get('/accounts')
      // Written without the page waiting for it (best-effort): soon after, not before the answer.
      let lastSeen = 0
      for (let i = 0; i < 100 && lastSeen <= Date.now() - 5_000; i++) {
        if (i) await new Promise((resolve) => setTimeout(resolve, 20))
        lastSeen = (await app.db.selectFrom('sessions').select('last_seen_at').executeTakeFirstOrThrow()).last_seen_at
      }
      t.ok(lastSeen > Date.now() - 5_000, 'lastSeen > Date.now() - 5_000')
    })

    t.test('a disabled user is signed out on the next request', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const client = new Client(app)
      await client.signIn(user.username)
      t.equal((await client.get('/accounts')).statusCode, 200, 'GET /accounts answers 200')
      await app.db.updateTable('users').set({ enabled: 0 }).where('id', '=', user.id).execute()
      t.equal((await client.get('/accounts')).statusCode, 303, 'GET /accounts answers 303')
      t.equal((await app.db.selectFrom('sessions').selectAll().execute()).length, 0, 'the sessions rows\' count is 0')
    })

    t.test('sign-in issues a new session id and CSRF token', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const client = new Client(app)
      await client.get('/login')
      const anonymousCookie = client.cookie
      const anonymousCsrf = client.csrf
      await client.post('/login', { username: user.username, password: PASSWORD })
      await client.get('/accounts')
      t.not(client.cookie, anonymousCookie, `client.cookie is not ${anonymousCookie}`)
      t.not(client.csrf, anonymousCsrf, `client.csrf is not ${anonymousCsrf}`)
      const stale = await app.inject({
        method: 'POST', url: '/logout', payload: `_csrf=${encodeURIComponent(anonymousCsrf)}`,
        headers: { cookie: client.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      })
      t.equal(stale.statusCode, 403, "the anonymous page's token does not work after sign-in")
    })

    t.test('sign-in and sign-out are audited', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const client = new Client(app)
      await client.signIn(user.username, 'Wrong-Password-123')
      await client.signIn(user.username)
      await client.get('/accounts')
      await client.post('/logout')
      const events = await app.db.selectFrom('audit_events').selectAll().orderBy('created_at').execute()
      t.same(events.map((e) => [e.action, e.outcome]), [['auth.sign_in', 'failure'], ['auth.sign_in', 'success'], ['auth.sign_out', 'success']], 'events.map((e) => [e.action, e.outcome]) is the expected list')
      t.equal(events[1]!.actor_name, user.username, `events[1].actor_name is ${user.username}`)
      t.ok(events.every((e) => e.created_at > 0 && e.ip), 'events.every((e) => e.created_at > 0 && e.ip)')
    })
  })
}
