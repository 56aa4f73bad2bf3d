import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { NEW_PASSWORD, Client, PASSWORD, buildTestApp, createUser, dialects, lastMessageTo } from '../helper.ts'
import { findUserById } from '../../src/areas/auth/repository.ts'

const INVALID_LINK = 'This link is invalid, has expired or has been used already.'
const SENT = 'If an account with that username exists, we have sent a link'

/** Asks for a reset link through the Forgot Password page. */
async function requestReset(app: FastifyInstance, username: string, headers: Record<string, string> = {}) {
  const client = new Client(app)
  await client.get('/forgot-password')
  return client.post('/forgot-password', { username }, headers)
}

function tokenFrom(body: string): string {
  const token = /\/reset-password\?token=([A-Za-z0-9_-]+)/.exec(body)?.[1]
  if (!token) throw new Error(`no reset link in the mail:\n${body}`)
  return token
}

/** Requests a reset for the user and returns the token from the mail it received. */
async function resetToken(app: FastifyInstance, username: string, recipient = username): Promise<string> {
  await requestReset(app, username)
  const mail = await lastMessageTo(app, recipient)
  if (!mail) throw new Error(`no mail to ${recipient}`)
  return tokenFrom(mail.body)
}

/** Opens the link from the mail and submits the form, as the user would. */
async function submitReset(app: FastifyInstance, token: string, password: string, confirm = password) {
  const client = new Client(app)
  const page = await client.get(`/reset-password?token=${token}`)
  // An invalid link's page has no form (so no CSRF token): post as a form kept open
  // in another tab would, with the token of this browser's session.
  if (!client.csrf) await client.get('/forgot-password')
  const res = await client.post('/reset-password', { token, password, confirm })
  return { page, res }
}

async function canSignIn(app: FastifyInstance, username: string, password: string): Promise<boolean> {
  const res = await new Client(app).signIn(username, password)
  return res.statusCode === 303
}

function withoutCsrf(body: string): string {
  return body.replace(/name="_csrf" value="[^"]+"/g, '')
}

for (const dialect of dialects) {
  t.test(`${dialect}: forgot password and reset`, async (t) => {
    t.test('the Forgot Password page has a Username field and a way back', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const res = await new Client(app).get('/forgot-password')
      t.equal(res.statusCode, 200, 'GET /forgot-password answers 200')
      t.match(res.body, '<h1 id="forgot-title">Forgot Password</h1>', 'the answer to GET /forgot-password shows \'<h1 id="forgot-title">Forgot Password</h1>\'')
      t.match(res.body, 'name="username"', 'the answer to GET /forgot-password shows \'name="username"\'')
      t.match(res.body, 'href="/login"', 'the answer to GET /forgot-password shows \'href="/login"\'')
      const login = await new Client(app).get('/login')
      t.match(login.body, 'href="/forgot-password"', 'the Log in page links to it')
    })

    t.test('the mail links to BASE_URL, never to the Host header of the request', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const res = await requestReset(app, user.username, { host: 'evil.example', 'x-forwarded-host': 'evil.example' })
      t.equal(res.statusCode, 200, 'requestReset(…) answers 200')
      t.match(res.body, SENT, `requestReset(…) shows ${SENT}`)
      const mail = await lastMessageTo(app, user.username)
      t.ok(mail, 'a mail is queued in the outbox')
      t.equal(mail!.kind, 'email', 'mail.kind is \'email\'')
      t.equal(mail!.status, 'stored', 'kept in the outbox (no SMTP configured)')
      t.match(mail!.subject, /reset/i, 'mail.subject matches /reset/i')
      const link = /https?:\/\/\S+/.exec(mail!.body)?.[0] ?? ''
      t.ok(link.startsWith('http://portal.test/reset-password?token='), `the link uses BASE_URL: ${link}`)
      t.notMatch(mail!.body, 'evil.example', 'lastMessageTo(…) does not show \'evil.example\'')
      t.match(mail!.body, user.name, 'addressed to the user by name')
    })

    t.test('mail goes to the e-mail address when set, else to the username', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const withEmail = await createUser(app, { email: 'ada.private@mail.example' })
      const without = await createUser(app)
      await requestReset(app, withEmail.username)
      await requestReset(app, without.username)
      const rows = await app.db.selectFrom('outbox').select('recipient').execute()
      t.same(rows.map((r) => r.recipient).sort(), ['ada.private@mail.example', without.username].sort(), 'rows.map((r) => r.recipient).sort() is [\'ada.private@mail.example\', without.username].sort()')
    })

    t.test('the username is matched without regard to case or surrounding spaces', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      await requestReset(app, `  ${user.username.toUpperCase()} `)
      t.ok(await lastMessageTo(app, user.username), 'lastMessageTo(app, user.username)')
    })

    t.test('unknown and disabled users get the same answer and no mail', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const known = await createUser(app)
      const disabled = await createUser(app, { enabled: 0 })
      const answers = []
      for (const username of [known.username, 'nobody@example.com', disabled.username]) {
        const res = await requestReset(app, username)
        t.equal(res.statusCode, 200, username)
        answers.push(withoutCsrf(res.body))
      }
      t.equal(new Set(answers).size, 1, 'the three pages are identical')
      const outbox = await app.db.selectFrom('outbox').select('recipient').execute()
      t.same(outbox.map((r) => r.recipient), [known.username], 'only the real, enabled user got a mail')
      const codes = await app.db.selectFrom('one_time_codes').selectAll().execute()
      t.equal(codes.length, 1, 'no link was made for the others')
    })

    t.test('an empty username asks for one', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const res = await requestReset(app, '   ')
      t.equal(res.statusCode, 422, 'requestReset(…) answers 422')
      t.match(res.body, 'Type your username.', 'requestReset(…) shows \'Type your username.\'')
      t.equal((await app.db.selectFrom('outbox').selectAll().execute()).length, 0, 'the outbox rows\' count is 0')
    })

    t.test('the token is stored only as a hash', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const token = await resetToken(app, user.username)
      t.ok(token.length >= 40, 'a long random token')
      const codes = await app.db.selectFrom('one_time_codes').selectAll().execute()
      t.equal(codes.length, 1, 'codes.length is 1')
      t.equal(codes[0]!.purpose, 'password_reset', 'codes[0].purpose is \'password_reset\'')
      t.equal(codes[0]!.user_id, user.id, `codes[0].user_id is ${user.id}`)
      t.notOk(JSON.stringify(codes).includes(token), 'the raw token is nowhere in the table')
      t.ok(codes[0]!.expires_at > Date.now() + 55 * 60_000 && codes[0]!.expires_at <= Date.now() + 60 * 60_000, 'valid for an hour')
    })

    t.test('the reset page shows the form; the token page is not leaked as a referrer', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const token = await resetToken(app, user.username)
      const res = await new Client(app).get(`/reset-password?token=${token}`)
      t.equal(res.statusCode, 200, `GET /reset-password?token=${token} answers 200`)
      t.match(res.body, 'New Password', `the answer to GET /reset-password?token=${token} shows 'New Password'`)
      t.match(res.body, 'Verify Password', `the answer to GET /reset-password?token=${token} shows 'Verify Password'`)
      t.equal(res.headers['referrer-policy'], 'no-referrer', 'res.headers[\'referrer-policy\'] is \'no-referrer\'')
      const again = await new Client(app).get(`/reset-password?token=${token}`)
      t.equal(again.statusCode, 200, 'opening the link (a GET) does not use it up')
    })

    t.test('the self-service password policy applies', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const token = await resetToken(app, user.username)
      const cases: Array<[string, RegExp]> = [
        ['Sh0rt!pw', /at least 12 characters long/],
        ['zebra-lamp-42-river', /an uppercase letter, a lowercase letter, a number and a special character/],
        ['Zebra7lampRiver', /an uppercase letter, a lowercase letter, a number and a special character/],
        ['Password123!', /too common/],
        ['Welcome2024!!', /too common/],
      ]
      for (const [password, message] of cases) {
        const { res } = await submitReset(app, token, password)
        t.equal(res.statusCode, 422, password)
        t.match(res.body, message, `${password}: the reason is shown`)
      }
      const row = await findUserById(app.db, user.id)
      t.equal(row!.password_hash, user.password_hash, 'the password is unchanged')
      t.ok(await canSignIn(app, user.username, PASSWORD), 'the old password still works')
      const { page } = await submitReset(app, token, NEW_PASSWORD, NEW_PASSWORD)
      t.equal(page.statusCode, 200, 'refused attempts do not use up the link')
    })

    t.test('a Verify Password that does not match is refused', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const token = await resetToken(app, user.username)
      const { res } = await submitReset(app, token, NEW_PASSWORD, NEW_PASSWORD + 'x')
      t.equal(res.statusCode, 422, 'submitReset(…): res answers 422')
      t.match(res.body, 'The passwords do not match.', 'submitReset(…): res shows \'The passwords do not match.\'')
      t.ok(await canSignIn(app, user.username, PASSWORD), 'unchanged')
      t.notOk(await canSignIn(app, user.username, NEW_PASSWORD), 'no canSignIn(app, user.username, NEW_PASSWORD)')
    })

    t.test('a reset changes the password, unlocks the user and ends all their sessions', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const laptop = new Client(app)
      await laptop.signIn(user.username)
      const phone = new Client(app)
      await phone.signIn(user.username, PASSWORD, true)
      t.equal((await laptop.get('/accounts')).statusCode, 200, 'GET /accounts answers 200')
      t.equal((await phone.get('/accounts')).statusCode, 200, 'GET /accounts answers 200')
      // Someone guesses until the account locks.
      for (let i = 0; i < 6; i++) await new Client(app).signIn(user.username, 'Wrong-Password-123')
      let row = await findUserById(app.db, user.id)
      t.ok(row!.locked_until! > Date.now(), 'locked before the reset')

      const token = await resetToken(app, user.username)
      const { res } = await submitReset(app, token, NEW_PASSWORD)
      t.equal(res.statusCode, 303, 'submitReset(…): res answers 303')
      t.equal(res.headers.location, '/login?m=reset', 'submitReset(…): res redirects to \'/login?m=reset\'')
      const login = await new Client(app).get('/login?m=reset')
      t.match(login.body, 'Your password has been reset.', 'the answer to GET /login?m=reset shows \'Your password has been reset.\'')

      row = await findUserById(app.db, user.id)
      t.equal(row!.failed_login_count, 0, 'the failure count is cleared')
      t.equal(row!.locked_until, null, 'the lock is lifted')
      t.equal((await laptop.get('/accounts')).statusCode, 303, 'the laptop is signed out')
      t.equal((await phone.get('/accounts')).statusCode, 303, 'the phone (Remember Me) is signed out too')
      const sessions = await app.db.selectFrom('sessions').selectAll().where('user_id', '=', user.id).execute()
      t.equal(sessions.length, 0, 'sessions.length is 0')
      t.notOk(await canSignIn(app, user.username, PASSWORD), 'the old password no longer works')
      t.ok(await canSignIn(app, user.username, NEW_PASSWORD), 'the new one does')
    })

    t.test('a link works once', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const token = await resetToken(app, user.username)
      t.equal((await submitReset(app, token, NEW_PASSWORD)).res.statusCode, 303, 'submitReset(…) answers 303')
      const { page, res } = await submitReset(app, token, 'Another-Fresh-99-Password')
      t.equal(page.statusCode, 410, 'opening it again shows the invalid-link page')
      t.match(page.body, INVALID_LINK, `submitReset(…): page shows ${INVALID_LINK}`)
      t.notMatch(page.body, 'name="password"', 'no form')
      t.equal(res.statusCode, 410, 'posting it again is refused')
      t.match(res.body, INVALID_LINK, `submitReset(…): res shows ${INVALID_LINK}`)
      t.ok(await canSignIn(app, user.username, NEW_PASSWORD), 'the first reset stands')
      t.notOk(await canSignIn(app, user.username, 'Another-Fresh-99-Password'), 'no canSignIn(…)')
    })

    t.test('an expired link is refused', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const token = await resetToken(app, user.username)
      await app.db.updateTable('one_time_codes').set({ expires_at: Date.now() - 1000 }).execute()
      const { page, res } = await submitReset(app, token, NEW_PASSWORD)
      t.equal(page.statusCode, 410, 'submitReset(…): page answers 410')
      t.match(page.body, INVALID_LINK, `submitReset(…): page shows ${INVALID_LINK}`)
      t.equal(res.statusCode, 410, 'submitReset(…): res answers 410')
      t.ok(await canSignIn(app, user.username, PASSWORD), 'the password is unchanged')
    })

    t.test('made-up, missing and truncated tokens are refused', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const token = await resetToken(app, user.username)
      for (const url of ['/reset-password', '/reset-password?token=', '/reset-password?token=abc', `/reset-password?token=${token.slice(0, -1)}`]) {
        const res = await new Client(app).get(url)
        t.equal(res.statusCode, 410, url)
        t.match(res.body, INVALID_LINK, url)
      }
      const { res } = await submitReset(app, token.slice(1), NEW_PASSWORD)
      t.equal(res.statusCode, 410, 'submitReset(…): res answers 410')
      t.ok(await canSignIn(app, user.username, PASSWORD), 'canSignIn(app, user.username, PASSWORD)')
    })

    t.test('a new request voids the previous link', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const first = await resetToken(app, user.username)
      const second = await resetToken(app, user.username)
      t.not(first, second, `first is not ${second}`)
      t.equal((await new Client(app).get(`/reset-password?token=${first}`)).statusCode, 410, 'the first link no longer works')
      t.equal((await submitReset(app, first, NEW_PASSWORD)).res.statusCode, 410, 'submitReset(…) answers 410')
      t.equal((await submitReset(app, second, NEW_PASSWORD)).res.statusCode, 303, 'the latest one does')
    })

    t.test("one user's link does not reset another user's password", async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const alice = await createUser(app)
      const bob = await createUser(app)
      await resetToken(app, bob.username)
      const token = await resetToken(app, alice.username)
      await submitReset(app, token, NEW_PASSWORD)
      t.ok(await canSignIn(app, alice.username, NEW_PASSWORD), 'canSignIn(app, alice.username, NEW_PASSWORD)')
      t.ok(await canSignIn(app, bob.username, PASSWORD), "Bob's password is unchanged")
      t.notOk(await canSignIn(app, bob.username, NEW_PASSWORD), 'no canSignIn(app, bob.username, NEW_PASSWORD)')
    })

    t.test('the forms need their CSRF token', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      let res = await app.inject({ method: 'POST', url: '/forgot-password', payload: { username: user.username } })
      t.equal(res.statusCode, 403, 'POST /forgot-password answers 403')
      t.equal((await app.db.selectFrom('outbox').selectAll().execute()).length, 0, 'no mail without the token')
      const token = await resetToken(app, user.username)
      res = await app.inject({ method: 'POST', url: '/reset-password', payload: { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD } })
      t.equal(res.statusCode, 403, 'POST /reset-password answers 403')
      t.ok(await canSignIn(app, user.username, PASSWORD), 'unchanged')
    })

    t.test('requests and resets are audited', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      await requestReset(app, 'nobody@example.com')
      const token = await resetToken(app, user.username)
      await submitReset(app, token, NEW_PASSWORD)
      const events = await app.db
        .selectFrom('audit_events')
        .selectAll()
        .where('action', 'in', ['auth.password_reset_requested', 'auth.password_reset'])
        .orderBy('created_at')
        .execute()
      t.same(
        events.map((e) => [e.action, e.outcome, e.target_name]),
        [
          ['auth.password_reset_requested', 'failure', null],
          ['auth.password_reset_requested', 'success', user.username],
          ['auth.password_reset', 'success', user.username],
        ], 'map(…) is the expected list',
      )
      t.match(events[0]!.fields, 'nobody@example.com', 'the unknown username is recorded for the investigator')
      t.ok(events.every((e) => e.ip), 'with the address')
      t.notOk(JSON.stringify(events).includes(token), 'the token is not in the audit log')
      t.notOk(JSON.stringify(events).includes(NEW_PASSWORD), 'nor the password')
    })
  })
}
