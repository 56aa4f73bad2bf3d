// Step-up (issue 15, items 2 and 9): every change of a second factor or of one's own password
// asks for the current password, page and API; wrong ones count toward the lockout like failed
// sign-ins; each 2FA change is audited and the user told; the authenticator page's GET writes
// nothing; a password changed by the API (or a reset link) voids reset links and sends a notice.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { NEW_PASSWORD, Client, PASSWORD, buildTestApp, createUser, dialects, lastMessageTo } from '../helper.ts'
import { LOCK_AFTER } from '../../src/areas/auth/service.ts'
import { PENDING_TOTP_TTL_MS } from '../../src/areas/two-factor/service.ts'
import { totpCodeAt } from '../../src/lib/otp.ts'

const SMS = { SMS_VIA_OUTBOX: 'true' }
const TWO_FACTOR_NOTICE = 'Two-factor authentication was changed on your MSSP Portal account'

async function signedIn(app: FastifyInstance, overrides: Parameters<typeof createUser>[1] = {}) {
  const user = await createUser(app, { role: 16, email: `u${Math.random().toString(36).slice(2, 8)}@mail.example.com`, ...overrides })
  const c = new Client(app)
  await c.signIn(user.username)
  await c.get('/my-account')
  return { user, c }
}

const twoFactorRow = (app: FastifyInstance, userId: number) => app.db.selectFrom('two_factor').selectAll().where('user_id', '=', userId).executeTakeFirst()
const userRow = (app: FastifyInstance, id: number) => app.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
const smsCount = async (app: FastifyInstance) => (await app.db.selectFrom('outbox').select('id').where('kind', '=', 'sms').execute()).length
const noticesTo = async (app: FastifyInstance, to: string, subject: string) =>
  (await app.db.selectFrom('outbox').select('subject').where('recipient', '=', to).execute()).filter((m) => m.subject === subject).length
const events = (app: FastifyInstance, action: string, outcome: 'success' | 'failure') =>
  app.db.selectFrom('audit_events').select(['fields', 'actor_name']).where('action', '=', action).where('outcome', '=', outcome).execute()

async function lastSms(app: FastifyInstance, to: string): Promise<string> {
  const row = await app.db.selectFrom('outbox').selectAll().where('kind', '=', 'sms').where('recipient', '=', to).orderBy('created_at', 'desc').executeTakeFirstOrThrow()
  return /code is (\d{6})/.exec(row.body)![1]!
}

const secretOf = (body: string) => /id="totp-secret">([A-Z2-7 ]+)</.exec(body)?.[1]?.replace(/ /g, '') ?? null

for (const dialect of dialects) {
  t.test(`${dialect}: step-up before changes of a second factor (pages)`, async (t) => {
    t.test('the phone number needs the current password; the change is audited and the user told', async (t) => {
      const { app } = await buildTestApp(t, dialect, SMS)
      const { user, c } = await signedIn(app)
      const plane = await c.get('/my-account/two-factor/setup')
      t.match(plane.body, /<label for="phone-current-password">Current Password<\/label>/, 'the phone step asks for it')
      for (const current_password of ['', 'Wrong-Password-1!']) {
        const res = await c.post('/my-account/two-factor/phone', { phone: '+15551234567', current_password })
        t.equal(res.statusCode, 422, `refused with ${current_password ? 'a wrong' : 'no'} password`)
        t.match(res.body, current_password ? 'The current password is not correct.' : 'Enter your current password.', 'the answer to POST /my-account/two-factor/phone shows the expected value')
        t.match(res.body, 'value="+15551234567"', 'the number typed is kept')
      }
      t.notOk((await twoFactorRow(app, user.id))?.pending_phone, 'no pending phone')
      t.equal(await smsCount(app), 0, 'no text sent')
      t.equal((await events(app, 'user.two_factor_enable', 'failure')).length, 2, 'both refusals audited')

      let res = await c.post('/my-account/two-factor/phone', { phone: '+15551234567', current_password: PASSWORD })
      t.equal(res.statusCode, 200, 'POST /my-account/two-factor/phone answers 200')
      res = await c.post('/my-account/two-factor/verify', { code: await lastSms(app, '+15551234567') })
      t.match(res.body, 'Two-factor authentication is configured for your account.', 'the answer to POST /my-account/two-factor/verify shows \'Two-factor authentication is configured for your account.\'')
      t.equal((await events(app, 'user.two_factor_enable', 'success')).length, 1, 'audited')
      const notice = await lastMessageTo(app, user.email!)
      t.equal(notice?.subject, TWO_FACTOR_NOTICE, 'the user is told')
      t.match(notice?.body, /Codes by text message to \+1 •••• ••67 were turned on/, 'lastMessageTo(…) shows /Codes by text message to \\+1 •••• ••67 were turned on/')

      // Replacing the number: the same step-up.
      await c.get('/my-account')
      res = await c.post('/my-account/two-factor/phone', { phone: '+15557654321' })
      t.equal(res.statusCode, 422, 'replacing the phone needs it too')
      t.equal((await twoFactorRow(app, user.id))?.pending_phone, null, '(twoFactorRow(app, user.id)).pending_phone is null')
    })

    t.test('the authenticator page writes nothing on GET; its secret comes from a POST with the password', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { user, c } = await signedIn(app)
      const page = await c.get('/my-account/two-factor/authenticator')
      t.equal(page.statusCode, 200, 'GET /my-account/two-factor/authenticator answers 200')
      t.equal(secretOf(page.body), null, 'no secret shown before the password')
      t.match(page.body, /<label for="totp-current-password">Current Password<\/label>/, 'the answer to GET /my-account/two-factor/authenticator shows /<label for="totp-current-password">Current Passwo…/')
      t.notOk(await twoFactorRow(app, user.id), 'the GET wrote nothing')
      const fragment = await c.get('/my-account/two-factor/authenticator', { 'hx-request': 'true' })
      t.notMatch(fragment.body, '<html', 'with htmx: the plane only')
      t.match(fragment.body, 'hx-post="/my-account/two-factor/authenticator/start"', 'the answer to GET /my-account/two-factor/authenticator shows \'hx-post="/my-account/two-factor/authenticator/start"\'')
      t.notOk(await twoFactorRow(app, user.id), 'nor did the fragment')

      const wrong = await c.post('/my-account/two-factor/authenticator/start', { current_password: 'Wrong-Password-1!' })
      t.equal(wrong.statusCode, 422, 'POST /my-account/two-factor/authenticator/start answers 422')
      t.match(wrong.body, 'The current password is not correct.', 'the answer to POST /my-account/two-factor/authenticator/start shows \'The current password is not correct.\'')
      t.notOk(await twoFactorRow(app, user.id), 'no secret made')

      const started = await c.post('/my-account/two-factor/authenticator/start', { current_password: PASSWORD })
      t.equal(started.statusCode, 200, 'POST /my-account/two-factor/authenticator/start answers 200')
      const secret = secretOf(started.body)
      t.ok(secret, 'the QR code and key')
      const stored = await twoFactorRow(app, user.id)
      const again = await c.get('/my-account/two-factor/authenticator')
      t.equal(secretOf(again.body), null, 'the pending secret is never shown again by a GET (another session could read it)')
      t.match(again.body, 'name="current_password"', 'the page asks for the password again')
      t.same(await twoFactorRow(app, user.id), stored, 'and the GET changed nothing')
      const mistyped = await c.post('/my-account/two-factor/authenticator', { code: '000000' === totpCodeAt(secret!) ? '111111' : '000000' })
      t.equal(mistyped.statusCode, 422, 'a wrong code is refused')
      t.equal(secretOf(mistyped.body), null, 'and is not answered with the secret')
      t.match(mistyped.body, 'name="code"', 'the code can be typed again')

      // A stale one is neither shown nor accepted.
      await app.db.updateTable('two_factor').set({ pending_totp_created_at: Date.now() - PENDING_TOTP_TTL_MS - 1000 }).where('user_id', '=', user.id).execute()
      t.equal(secretOf((await c.get('/my-account/two-factor/authenticator')).body), null, 'a stale secret is not shown')
      const stale = await c.post('/my-account/two-factor/authenticator', { code: totpCodeAt(secret!) })
      t.equal(stale.statusCode, 422, 'nor confirmed')
      t.notOk((await twoFactorRow(app, user.id))?.totp_secret, 'no (twoFactorRow(app, user.id)).totp_secret')

      const fresh = secretOf((await c.post('/my-account/two-factor/authenticator/start', { current_password: PASSWORD })).body)!
      const done = await c.post('/my-account/two-factor/authenticator', { code: totpCodeAt(fresh) })
      t.match(done.body, 'Two-factor authentication is configured for your account.', 'the answer to POST /my-account/two-factor/authenticator shows \'Two-factor authentication is configured for your account.\'')
      t.equal((await lastMessageTo(app, user.email!))?.subject, TWO_FACTOR_NOTICE, 'the user is told')
      t.match((await events(app, 'user.two_factor_enable', 'success'))[0]?.fields, 'authenticator app', 'fields matches \'authenticator app\'')
    })

    t.test('backup e-mail, Disable and new recovery codes: the password, an audit event and a notice each', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { user, c } = await signedIn(app)
      const secret = secretOf((await c.post('/my-account/two-factor/authenticator/start', { current_password: PASSWORD })).body)!
      await c.post('/my-account/two-factor/authenticator', { code: totpCodeAt(secret) })
      await c.get('/my-account')

      let res = await c.post('/my-account/two-factor/backup-email', { send_backup_email: '1' })
      t.equal(res.statusCode, 422, 'backup e-mail without the password')
      t.match(res.body, /id="backup-password"[^>]*aria-invalid="true"/, 'the box is marked')
      t.equal((await twoFactorRow(app, user.id))?.email_enabled, 0, 'unchanged')
      const before = await noticesTo(app, user.email!, TWO_FACTOR_NOTICE)
      res = await c.post('/my-account/two-factor/backup-email', { send_backup_email: '1', current_password: PASSWORD })
      t.equal(res.statusCode, 303, 'POST /my-account/two-factor/backup-email answers 303')
      t.equal((await twoFactorRow(app, user.id))?.email_enabled, 1, '(twoFactorRow(app, user.id)).email_enabled is 1')
      t.equal(await noticesTo(app, user.email!, TWO_FACTOR_NOTICE), before + 1, 'a notice')
      t.match((await lastMessageTo(app, user.email!))?.body, 'Backup e-mail codes were turned on', 'lastMessageTo(…) shows \'Backup e-mail codes were turned on\'')

      await c.get('/my-account')
      res = await c.post('/my-account/two-factor/recovery-codes', { current_password: 'Wrong-Password-1!' })
      t.equal(res.statusCode, 422, 'POST /my-account/two-factor/recovery-codes answers 422')
      t.equal((await events(app, 'user.recovery_codes_regenerate', 'failure')).length, 1, 'the refusal is audited')
      res = await c.post('/my-account/two-factor/recovery-codes', { current_password: PASSWORD })
      t.equal(res.statusCode, 200, 'POST /my-account/two-factor/recovery-codes answers 200')
      t.match((await lastMessageTo(app, user.email!))?.body, 'New recovery codes were generated', 'lastMessageTo(…) shows \'New recovery codes were generated\'')

      await c.get('/my-account/two-factor/disable')
      res = await c.post('/my-account/two-factor/disable', { current_password: 'Wrong-Password-1!' })
      t.equal(res.statusCode, 422, 'POST /my-account/two-factor/disable answers 422')
      const failed = await events(app, 'user.two_factor_disable', 'failure')
      t.equal(failed.length, 1, 'a failed Disable is audited')
      t.match(failed[0]?.fields, 'wrong current password', 'failed[0].fields matches \'wrong current password\'')
      res = await c.post('/my-account/two-factor/disable', { current_password: PASSWORD })
      t.equal(res.statusCode, 303, 'POST /my-account/two-factor/disable answers 303')
      t.notOk(await twoFactorRow(app, user.id), 'no twoFactorRow(app, user.id)')
      t.equal((await events(app, 'user.two_factor_disable', 'success')).length, 1, 'length is 1')
      t.match((await lastMessageTo(app, user.email!))?.body, 'Two-factor authentication was turned off', 'lastMessageTo(…) shows \'Two-factor authentication was turned off\'')
    })

    t.test('while assisting, no second factor changes and the authenticator page writes nothing', async (t) => {
      const { app } = await buildTestApp(t, dialect, SMS)
      const user = await createUser(app, { role: 16 })
      const admin = await createUser(app, { role: 64 })
      const a = new Client(app)
      await a.signIn(admin.username)
      await a.get('/users')
      t.equal((await a.post(`/users/${user.uuid}/assist`)).statusCode, 303, `POST /users/${user.uuid}/assist answers 303`)
      await a.get('/my-account')
      t.equal((await a.get('/my-account/two-factor/authenticator')).statusCode, 200, 'GET /my-account/two-factor/authenticator answers 200')
      t.notOk(await twoFactorRow(app, user.id), 'the page wrote nothing for the assisted user')
      for (const [url, form] of [
        ['/my-account/two-factor/authenticator/start', { current_password: PASSWORD }],
        ['/my-account/two-factor/phone', { phone: '+15551234567', current_password: PASSWORD }],
        ['/my-account/two-factor/backup-email', { send_backup_email: '1', current_password: PASSWORD }],
      ] as const) {
        t.equal((await a.post(url, form)).statusCode, 403, `${url} is refused`)
      }
      t.notOk(await twoFactorRow(app, user.id), 'nothing changed')
    })
  })

  t.test(`${dialect}: step-up in the API`, async (t) => {
    t.test('PUT /users/{own id}/two-factor and send-verification need current_password (400), nothing changed', async (t) => {
      const { app } = await buildTestApp(t, dialect, SMS)
      const { user, c } = await signedIn(app)
      const keys = await c.apiKeys()
      let res = await app.inject({ method: 'POST', url: `/api/users/${user.id}/two-factor/send-verification`, headers: keys, payload: { sms_phone: '+15557654321' } })
      t.equal(res.statusCode, 400, 'send-verification without current_password')
      res = await app.inject({ method: 'POST', url: `/api/users/${user.id}/two-factor/send-verification`, headers: keys, payload: { sms_phone: '+15557654321', current_password: 'Wrong-Password-1!' } })
      t.equal(res.statusCode, 400, 'with a wrong one')
      t.match(res.json().message, 'current password is not correct', 'res.json().message matches \'current password is not correct\'')
      t.equal(await smsCount(app), 0, 'no text sent')
      res = await app.inject({ method: 'POST', url: `/api/users/${user.id}/two-factor/send-verification`, headers: keys, payload: { sms_phone: '+15557654321', current_password: PASSWORD } })
      t.equal(res.statusCode, 200, `POST /api/users/${user.id}/two-factor/send-verification answers 200`)
      res = await app.inject({ method: 'POST', url: `/api/users/${user.id}/two-factor/verify-code`, headers: keys, payload: { verification_code: await lastSms(app, '+15557654321') } })
      t.equal(res.statusCode, 200, `POST /api/users/${user.id}/two-factor/verify-code answers 200`)
      t.equal((await lastMessageTo(app, user.email!))?.subject, TWO_FACTOR_NOTICE, 'the user is told')

      // By key and by cookie alike.
      for (const headers of [keys, { ...c.headers(), 'x-csrf-token': c.csrf }]) {
        for (const payload of [{ sms_enabled: false }, { sms_enabled: false, current_password: 'Wrong-Password-1!' }]) {
          res = await app.inject({ method: 'PUT', url: `/api/users/${user.id}/two-factor`, headers, payload })
          t.equal(res.statusCode, 400, 'turning SMS off without the right current_password')
          t.equal(res.json().statusCode, 400, 'a JSON error')
        }
      }
      t.equal((await twoFactorRow(app, user.id))?.sms_phone, '+15557654321', 'still on')
      const notices = await noticesTo(app, user.email!, TWO_FACTOR_NOTICE)
      res = await app.inject({ method: 'PUT', url: `/api/users/${user.id}/two-factor`, headers: keys, payload: { sms_enabled: false, current_password: PASSWORD } })
      t.equal(res.statusCode, 200, `PUT /api/users/${user.id}/two-factor answers 200`)
      t.notOk(await twoFactorRow(app, user.id), 'off')
      t.equal(await noticesTo(app, user.email!, TWO_FACTOR_NOTICE), notices + 1, 'and the user is told')
      t.equal((await events(app, 'user.two_factor_disable', 'success')).length, 1, 'audited')
    })

    t.test('wrong current passwords count toward the lockout; a locked account is refused even with the right one', async (t) => {
      const { app } = await buildTestApp(t, dialect, SMS)
      const { user, c } = await signedIn(app)
      const keys = await c.apiKeys()
      // Guesses spread over the pages and the API all count.
      const guesses = [
        (guess: string) => c.post('/my-account/password', { current_password: guess, new_password: NEW_PASSWORD }),
        (guess: string) => app.inject({ method: 'PUT', url: '/api/session/chpasswd', headers: keys, payload: { password: NEW_PASSWORD, current_password: guess } }),
        (guess: string) => c.post('/my-account/profile', { name: user.name, email: 'elsewhere@mail.example.com', current_password: guess }),
        (guess: string) => app.inject({ method: 'PUT', url: `/api/users/${user.id}/two-factor`, headers: keys, payload: { email_enabled: false, current_password: guess } }),
        (guess: string) => c.post('/my-account/two-factor/authenticator/start', { current_password: guess }),
      ]
      t.equal(guesses.length, LOCK_AFTER, `guesses.length is ${LOCK_AFTER}`)
      for (const [i, guess] of guesses.entries()) {
        const res = await guess(`Guess-${i}-Wrong!x`)
        t.ok(res.statusCode >= 400 && res.statusCode < 500, `guess ${i + 1} refused (${res.statusCode})`)
      }
      const row = await userRow(app, user.id)
      t.equal(row.failed_login_count, LOCK_AFTER, `row.failed_login_count is ${LOCK_AFTER}`)
      t.ok(row.locked_until && row.locked_until > Date.now(), 'five wrong passwords lock the account')
      t.ok((await events(app, 'auth.lockout', 'success')).length >= 1, 'the lockout is audited')

      const api = await app.inject({ method: 'PUT', url: `/api/users/${user.id}/two-factor`, headers: keys, payload: { email_enabled: false, current_password: PASSWORD } })
      t.equal(api.statusCode, 429, 'the right password is refused while locked')
      t.ok(Number(api.headers['retry-after']) > 0, 'with Retry-After')
      t.match(api.json().message, 'locked', 'api.json().message matches \'locked\'')
      const chpasswd = await app.inject({ method: 'PUT', url: '/api/session/chpasswd', headers: keys, payload: { password: NEW_PASSWORD, current_password: PASSWORD } })
      t.equal(chpasswd.statusCode, 429, 'PUT /api/session/chpasswd answers 429')
      await c.get('/my-account')
      const page = await c.post('/my-account/password', { current_password: PASSWORD, new_password: NEW_PASSWORD })
      t.equal(page.statusCode, 422, 'the page too')
      t.match(page.body, 'your account is locked for', 'the answer to POST /my-account/password shows \'your account is locked for\'')
      t.equal((await userRow(app, user.id)).password_hash, user.password_hash, 'the password is unchanged')
      t.equal((await new Client(app).signIn(user.username)).statusCode, 401, 'and signing in is locked too')

      // After the lock, the right password works and clears the count, as a sign-in does.
      await app.db.updateTable('users').set({ locked_until: Date.now() - 1 }).where('id', '=', user.id).execute()
      const after = await app.inject({ method: 'PUT', url: '/api/session/chpasswd', headers: keys, payload: { password: NEW_PASSWORD, current_password: PASSWORD } })
      t.equal(after.statusCode, 200, 'PUT /api/session/chpasswd answers 200')
      t.equal((await userRow(app, user.id)).failed_login_count, 0, '(userRow(app, user.id)).failed_login_count is 0')
    })

    t.test('PUT /users/{own id}/chpasswd changes one\'s own password only with the current one', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { user, c } = await signedIn(app, { role: 64 })
      const keys = await c.apiKeys()
      let res = await app.inject({ method: 'PUT', url: `/api/users/${user.id}/chpasswd`, headers: keys, payload: { password: NEW_PASSWORD } })
      t.equal(res.statusCode, 400, 'without current_password')
      res = await app.inject({ method: 'PUT', url: `/api/users/${user.id}/chpasswd`, headers: keys, payload: { password: NEW_PASSWORD, current_password: 'Wrong-Password-1!' } })
      t.equal(res.statusCode, 400, 'with a wrong one')
      t.equal((await userRow(app, user.id)).failed_login_count, 1, 'which counts toward the lockout')
      t.equal((await userRow(app, user.id)).password_hash, user.password_hash, `(userRow(app, user.id)).password_hash is ${user.password_hash}`)
      res = await app.inject({ method: 'PUT', url: `/api/users/${user.id}/chpasswd`, headers: keys, payload: { password: 'Lime-Tree-9', current_password: PASSWORD } })
      t.equal(res.statusCode, 400, 'one\'s own: the self-service rule')
      t.match(res.json().message, /^password: Passwords must be at least 12 characters/, 'res.json().message matches /^password: Passwords must be at least 12 characters/')
      res = await app.inject({ method: 'PUT', url: `/api/users/${user.id}/chpasswd`, headers: keys, payload: { password: NEW_PASSWORD, current_password: PASSWORD } })
      t.equal(res.statusCode, 200, `PUT /api/users/${user.id}/chpasswd answers 200`)
      t.equal((await new Client(app).signIn(user.username, NEW_PASSWORD)).statusCode, 303, 'the new password signs in')
    })
  })

  t.test(`${dialect}: every password change voids reset links and tells the user`, async (t) => {
    async function mailedResetToken(app: FastifyInstance, username: string, to: string): Promise<string> {
      const anon = new Client(app)
      await anon.get('/forgot-password')
      await anon.post('/forgot-password', { username })
      const token = /token=([A-Za-z0-9_-]+)/.exec((await lastMessageTo(app, to))?.body ?? '')?.[1]
      if (!token) throw new Error('no reset link mailed')
      return token
    }
    const PASSWORD_NOTICE = 'Your MSSP Portal password was changed'

    for (const [name, change] of [
      ['PUT /api/session/chpasswd', (app: FastifyInstance, keys: Record<string, string>) => app.inject({ method: 'PUT', url: '/api/session/chpasswd', headers: keys, payload: { password: NEW_PASSWORD, current_password: PASSWORD } })],
      ['PUT /session/chpasswd (form post)', (app: FastifyInstance, keys: Record<string, string>) => app.inject({ method: 'PUT', url: '/session/chpasswd', headers: { ...keys, 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ password: NEW_PASSWORD, current_password: PASSWORD }).toString() })],
    ] as const) {
      t.test(`${name}: a reset link mailed before it stops working, and a notice is mailed`, async (t) => {
        const { app } = await buildTestApp(t, dialect)
        const { user, c } = await signedIn(app)
        const keys = await c.apiKeys()
        const token = await mailedResetToken(app, user.username, user.email!)
        t.equal((await new Client(app).get(`/reset-password?token=${token}`)).statusCode, 200, 'the link works before')
        const res = await change(app, keys)
        t.equal(res.statusCode, 200, 'change(…) answers 200')
        t.not((await new Client(app).get(`/reset-password?token=${token}`)).statusCode, 200, 'the link is void after the change')
        const notice = await lastMessageTo(app, user.email!)
        t.equal(notice?.subject, PASSWORD_NOTICE, 'a notice is in the outbox')
        t.match(notice?.body, 'every session was signed out', 'lastMessageTo(…) shows \'every session was signed out\'')
        t.equal((await c.get('/accounts')).statusCode, 303, 'the browser session ended')
      })
    }

    t.test('a reset link: the notice is mailed too', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app, { email: 'rita@mail.example.com' })
      const token = await mailedResetToken(app, user.username, 'rita@mail.example.com')
      const c = new Client(app)
      await c.get(`/reset-password?token=${token}`)
      const res = await c.post('/reset-password', { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD })
      t.equal(res.statusCode, 303, 'POST /reset-password answers 303')
      const notice = await lastMessageTo(app, 'rita@mail.example.com')
      t.equal(notice?.subject, PASSWORD_NOTICE, `notice.subject is ${PASSWORD_NOTICE}`)
      t.match(notice?.body, 'reset with a link', 'lastMessageTo(…) shows \'reset with a link\'')
    })
  })
}
