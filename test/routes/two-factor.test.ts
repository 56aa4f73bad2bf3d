import t from 'tap'
import { Client, PASSWORD, buildTestApp, createUser, dialects } from '../helper.ts'
import { totpCodeAt } from '../../src/lib/otp.ts'
import { MAX_CODE_ATTEMPTS } from '../../src/areas/two-factor/service.ts'
import { setRequire2fa } from '../../src/areas/settings/service.ts'
import type { FastifyInstance } from 'fastify'

const SMS = { SMS_VIA_OUTBOX: 'true' }

async function lastSms(app: FastifyInstance, to: string): Promise<string> {
  const row = await app.db.selectFrom('outbox').selectAll().where('kind', '=', 'sms').where('recipient', '=', to).orderBy('created_at', 'desc').executeTakeFirstOrThrow()
  return /code is (\d{6})/.exec(row.body)![1]!
}

/** Sets up SMS two-factor through My Account, as the user would. */
async function enableSms(c: Client, app: FastifyInstance, phone = '+15551234567') {
  await c.get('/my-account')
  let res = await c.post('/my-account/two-factor/phone', { phone: '+1 (555) 123-4567', current_password: PASSWORD })
  if (res.statusCode !== 200 || !res.body.includes('Verification Code')) throw new Error(`phone step failed: ${res.statusCode}`)
  res = await c.post('/my-account/two-factor/verify', { code: await lastSms(app, phone) })
  return res
}

async function enableTotp(c: Client): Promise<string> {
  await c.get('/my-account/two-factor/authenticator')
  const page = await c.post('/my-account/two-factor/authenticator/start', { current_password: PASSWORD })
  const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(page.body)![1]!.replace(/ /g, '')
  const res = await c.post('/my-account/two-factor/authenticator', { code: totpCodeAt(secret) })
  if (!res.body.includes('Two-factor authentication is configured')) throw new Error('totp setup failed')
  return secret
}

for (const dialect of dialects) {
  t.test(`${dialect}: two-factor authentication`, async (t) => {
    t.test('SMS setup by the guide: phone, Next, Verification Code, Next, success and recovery codes', async (t) => {
      const { app } = await buildTestApp(t, dialect, SMS)
      const user = await createUser(app)
      const c = new Client(app)
      await c.signIn(user.username)
      const page = await c.get('/my-account')
      t.match(page.body, 'Enable Two Factor Authentication', 'the answer to GET /my-account shows \'Enable Two Factor Authentication\'')
      t.match(page.body, '>Enable</a>', 'the answer to GET /my-account shows \'>Enable</a>\'')
      const plane = await c.get('/my-account/two-factor/setup', { 'hx-request': 'true' })
      t.match(plane.body, 'Two-Factor Setup', 'the answer to GET /my-account/two-factor/setup shows \'Two-Factor Setup\'')
      t.match(plane.body, 'Mobile Phone Number', 'the answer to GET /my-account/two-factor/setup shows \'Mobile Phone Number\'')
      let res = await c.post('/my-account/two-factor/phone', { phone: '12345', current_password: PASSWORD })
      t.equal(res.statusCode, 422, 'POST /my-account/two-factor/phone answers 422')
      t.match(res.body, 'country code', 'the answer to POST /my-account/two-factor/phone shows \'country code\'')
      res = await enableSms(c, app)
      t.match(res.body, 'Two-factor authentication is configured for your account.', 'enableSms(…) shows \'Two-factor authentication is configured for your account.\'')
      const codes = /id="recovery-codes"[^>]*>([^<]+)</.exec(res.body)![1]!.split('\n')
      t.equal(codes.length, 10, 'ten recovery codes shown once')
      const stored = await app.db.selectFrom('recovery_codes').selectAll().execute()
      t.equal(stored.length, 10, 'stored.length is 10')
      t.notOk(stored.some((r) => codes.some((c) => r.code_hash.includes(c))), 'stored hashed')
      const tf = await app.db.selectFrom('two_factor').selectAll().executeTakeFirstOrThrow()
      t.equal(tf.sms_phone, '+15551234567', 'tf.sms_phone is \'+15551234567\'')
      const after = await c.get('/my-account')
      t.match(after.body, '>Edit</a>', 'the answer to GET /my-account shows \'>Edit</a>\'')
      t.match(after.body, '>Disable</a>', 'the answer to GET /my-account shows \'>Disable</a>\'')
    })

    t.test('without an SMS transport, setup says so and offers the authenticator app', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const c = new Client(app)
      await c.signIn(user.username)
      const plane = await c.get('/my-account/two-factor/setup')
      t.match(plane.body, 'Text messages are not configured on this portal', 'the answer to GET /my-account/two-factor/setup shows \'Text messages are not configured on this portal\'')
      t.match(plane.body, 'Use an authenticator app', 'the answer to GET /my-account/two-factor/setup shows \'Use an authenticator app\'')
      t.notMatch(plane.body, 'Mobile Phone Number', 'the answer to GET /my-account/two-factor/setup does not show \'Mobile Phone Number\'')
      const res = await c.post('/my-account/two-factor/phone', { phone: '+15551234567', current_password: PASSWORD })
      t.equal(res.statusCode, 422, 'POST /my-account/two-factor/phone answers 422')
      t.equal((await app.db.selectFrom('outbox').selectAll().where('kind', '=', 'sms').execute()).length, 0, 'no text queued for no one')
    })

    t.test('sign-in with an SMS code: the half-signed-in session reaches nothing else', async (t) => {
      const { app } = await buildTestApp(t, dialect, SMS)
      const user = await createUser(app)
      const setup = new Client(app)
      await setup.signIn(user.username)
      await enableSms(setup, app)
      const c = new Client(app)
      const res = await c.signIn(user.username)
      t.equal(res.headers.location, '/login/verify', 'signing in redirects to \'/login/verify\'')
      for (const url of ['/accounts', '/my-account', '/help/api']) {
        const page = await c.get(url)
        t.equal(page.statusCode, 303, `${url} is out of reach`)
        t.equal(page.headers.location, '/login/verify', `GET ${url} redirects to '/login/verify'`)
      }
      t.equal((await c.get('/accounts', { 'hx-request': 'true' })).headers['hx-redirect'], '/login/verify', 'fragments too')
      const api = await c.get('/api/session')
      t.equal(api.statusCode, 401, 'and the API')
      const verify = await c.get('/login/verify')
      t.match(verify.body, 'Verification Code', 'the answer to GET /login/verify shows \'Verification Code\'')
      t.match(verify.body, '+1 •••• ••67', 'the answer to GET /login/verify shows \'+1 •••• ••67\'')
      t.match(verify.body, 'Resend Code', 'the answer to GET /login/verify shows \'Resend Code\'')
      const done = await c.post('/login/verify', { code: await lastSms(app, '+15551234567') })
      t.equal(done.statusCode, 303, 'POST /login/verify answers 303')
      t.equal(done.headers.location, '/accounts', 'POST /login/verify redirects to \'/accounts\'')
      t.equal((await c.get('/accounts')).statusCode, 200, 'GET /accounts answers 200')
      const events = await app.db.selectFrom('audit_events').select(['action', 'fields']).where('action', '=', 'auth.sign_in').where('outcome', '=', 'success').execute()
      t.ok(events.some((e) => e.fields.includes('sent code')), 'some(…)')
    })

    t.test('codes: single use, bound to the attempt, voided by a resend, expiring; resends limited', async (t) => {
      const { app } = await buildTestApp(t, dialect, SMS)
      const user = await createUser(app)
      const setup = new Client(app)
      await setup.signIn(user.username)
      await enableSms(setup, app)
      const a = new Client(app)
      await a.signIn(user.username)
      const codeA = await lastSms(app, '+15551234567')
      const b = new Client(app)
      await b.signIn(user.username)
      await b.get('/login/verify')
      const codeB = await lastSms(app, '+15551234567')
      if (codeA !== codeB) {
        const cross = await b.post('/login/verify', { code: codeA })
        t.equal(cross.statusCode, 401, "another attempt's code does not work")
      }
      // resend voids the previous code
      await a.get('/login/verify')
      await app.db.updateTable('one_time_codes').set({ created_at: Date.now() - 60_000 }).execute()
      const resent = await a.post('/login/verify/resend', { channel: 'sms' })
      t.match(resent.body, 'A new code is on its way', 'the answer to POST /login/verify/resend shows \'A new code is on its way\'')
      const fresh = await lastSms(app, '+15551234567')
      if (fresh !== codeA) t.equal((await a.post('/login/verify', { code: codeA })).statusCode, 401, 'the old code is void')
      // too soon: rate limited
      const soon = await a.post('/login/verify/resend', { channel: 'sms' })
      t.equal(soon.statusCode, 429, 'POST /login/verify/resend answers 429')
      t.match(soon.body, 'Wait', 'the answer to POST /login/verify/resend shows \'Wait\'')
      // expired
      await app.db.updateTable('one_time_codes').set({ expires_at: Date.now() - 1 }).where('used_at', 'is', null).execute()
      t.equal((await a.post('/login/verify', { code: fresh })).statusCode, 401, 'an expired code is refused')
      // a fresh code works once
      await app.db.updateTable('one_time_codes').set({ created_at: Date.now() - 60_000 }).execute()
      await a.post('/login/verify/resend', { channel: 'sms' })
      const last = await lastSms(app, '+15551234567')
      t.equal((await a.post('/login/verify', { code: last })).statusCode, 303, 'POST /login/verify answers 303')
      await b.get('/login/verify')
      t.equal((await b.post('/login/verify', { code: last })).statusCode, 401, 'used once only')
    })

    t.test('a few wrong codes void the attempt and count as failed sign-ins', async (t) => {
      const { app } = await buildTestApp(t, dialect, SMS)
      const user = await createUser(app)
      const setup = new Client(app)
      await setup.signIn(user.username)
      await enableSms(setup, app)
      const c = new Client(app)
      await c.signIn(user.username)
      await c.get('/login/verify')
      let res
      for (let i = 0; i < MAX_CODE_ATTEMPTS; i++) res = await c.post('/login/verify', { code: '000000' })
      t.equal(res!.headers.location, '/login?m=too-many-codes', 'POST /login/verify redirects to \'/login?m=too-many-codes\'')
      const row = await app.db.selectFrom('users').selectAll().where('id', '=', user.id).executeTakeFirstOrThrow()
      t.equal(row.failed_login_total, MAX_CODE_ATTEMPTS, `row.failed_login_total is ${MAX_CODE_ATTEMPTS}`)
      t.ok(row.locked_until, 'five failures lock the account too')
      t.equal((await c.get('/accounts')).statusCode, 303, 'GET /accounts answers 303')
      t.match((await c.get('/login?m=too-many-codes')).body, 'Too many wrong verification codes', 'the answer to GET /login?m=too-many-codes shows \'Too many wrong verification codes\'')
    })

    t.test('authenticator app: QR code and secret, sign-in with TOTP, no replay within its window', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const setup = new Client(app)
      await setup.signIn(user.username)
      await setup.get('/my-account/two-factor/authenticator')
      const page = await setup.post('/my-account/two-factor/authenticator/start', { current_password: PASSWORD })
      t.match(page.body, '<svg', 'the answer to POST /my-account/two-factor/authenticator/start shows \'<svg\'')
      t.match(page.body, 'Verification Code', 'the answer to POST /my-account/two-factor/authenticator/start shows \'Verification Code\'')
      const wrong = await setup.post('/my-account/two-factor/authenticator', { code: '123456' })
      t.equal(wrong.statusCode, 422, 'POST /my-account/two-factor/authenticator answers 422')
      const secret = await enableTotp(setup)
      const stored = await app.db.selectFrom('two_factor').selectAll().executeTakeFirstOrThrow()
      t.notMatch(stored.totp_secret!, secret, 'the secret is encrypted at rest')
      // the setup code was consumed: wait for the next step by moving the last step back
      await app.db.updateTable('two_factor').set({ totp_last_step: 0 }).execute()
      const c = new Client(app)
      await c.signIn(user.username)
      const verify = await c.get('/login/verify')
      t.match(verify.body, 'authenticator app', 'the answer to GET /login/verify shows \'authenticator app\'')
      const code = totpCodeAt(secret)
      t.equal((await c.post('/login/verify', { code })).statusCode, 303, 'POST /login/verify answers 303')
      const d = new Client(app)
      await d.signIn(user.username)
      await d.get('/login/verify')
      t.equal((await d.post('/login/verify', { code })).statusCode, 401, 'the same code is refused a second time')
    })

    t.test('a recovery code signs in once', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const setup = new Client(app)
      await setup.signIn(user.username)
      await setup.get('/my-account/two-factor/authenticator')
      const page = await setup.post('/my-account/two-factor/authenticator/start', { current_password: PASSWORD })
      const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(page.body)![1]!.replace(/ /g, '')
      const done = await setup.post('/my-account/two-factor/authenticator', { code: totpCodeAt(secret) })
      const codes = /id="recovery-codes"[^>]*>([^<]+)</.exec(done.body)![1]!.split('\n')
      const c = new Client(app)
      await c.signIn(user.username)
      await c.get('/login/verify')
      t.equal((await c.post('/login/verify', { code: codes[0]!.toUpperCase() })).statusCode, 303, 'POST /login/verify answers 303')
      const d = new Client(app)
      await d.signIn(user.username)
      await d.get('/login/verify')
      t.equal((await d.post('/login/verify', { code: codes[0]! })).statusCode, 401, 'used once')
    })

    t.test('backup e-mail codes, and Disable Two-Factor with the password', async (t) => {
      const { app } = await buildTestApp(t, dialect, SMS)
      const user = await createUser(app, { email: 'ada@example.com' })
      const setup = new Client(app)
      await setup.signIn(user.username)
      await enableSms(setup, app)
      await setup.get('/my-account')
      t.equal((await setup.post('/my-account/two-factor/backup-email', { send_backup_email: '1', current_password: PASSWORD })).statusCode, 303, 'POST /my-account/two-factor/backup-email answers 303')
      const c = new Client(app)
      await c.signIn(user.username)
      const verify = await c.get('/login/verify')
      t.match(verify.body, 'Send a code to my backup e-mail', 'the answer to GET /login/verify shows \'Send a code to my backup e-mail\'')
      await app.db.updateTable('one_time_codes').set({ created_at: Date.now() - 60_000 }).execute()
      await c.post('/login/verify/resend', { channel: 'email' })
      const mail = await app.db.selectFrom('outbox').selectAll().where('recipient', '=', 'ada@example.com').orderBy('created_at', 'desc').executeTakeFirstOrThrow()
      const code = /code is (\d{6})/.exec(mail.body)![1]!
      t.equal((await c.post('/login/verify', { code })).statusCode, 303, 'POST /login/verify answers 303')
      // Disable: the window, its warning, the password
      const window = await c.get('/my-account/two-factor/disable')
      t.match(window.body, 'Disable Two-Factor', 'the answer to GET /my-account/two-factor/disable shows \'Disable Two-Factor\'')
      t.match(window.body, 'deletes your mobile phone number', 'the answer to GET /my-account/two-factor/disable shows \'deletes your mobile phone number\'')
      t.equal((await c.post('/my-account/two-factor/disable', { current_password: 'wrong' })).statusCode, 422, 'POST /my-account/two-factor/disable answers 422')
      t.ok(await app.db.selectFrom('two_factor').selectAll().executeTakeFirst(), 'still on after a wrong password')
      t.equal((await c.post('/my-account/two-factor/disable', { current_password: PASSWORD })).statusCode, 303, 'POST /my-account/two-factor/disable answers 303')
      t.notOk(await app.db.selectFrom('two_factor').selectAll().executeTakeFirst(), 'phone and settings deleted')
      t.equal((await app.db.selectFrom('recovery_codes').selectAll().execute()).length, 0, 'the recovery_codes rows\' count is 0')
      const e = new Client(app)
      t.equal((await e.signIn(user.username)).headers.location, '/accounts', 'sign-in needs no code any more')
    })

    t.test('the require-2FA setting sends users without it to setup; the authenticator app satisfies it', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app, { role: 16 })
      await setRequire2fa(app.db, true)
      const c = new Client(app)
      await c.signIn(user.username)
      const res = await c.get('/accounts')
      t.equal(res.statusCode, 303, 'GET /accounts answers 303')
      t.equal(res.headers.location, '/my-account?setup=required', 'GET /accounts redirects to \'/my-account?setup=required\'')
      const page = await c.get('/my-account?setup=required')
      t.match(page.body, 'The portal requires two-factor authentication', 'the answer to GET /my-account?setup=required shows \'The portal requires two-factor authentication\'')
      await enableTotp(c)
      t.equal((await c.get('/accounts')).statusCode, 200, 'GET /accounts answers 200')
    })
  })
}

for (const dialect of dialects) {
  t.test(`${dialect}: two-factor API (the caller's own only)`, async (t) => {
    const { app } = await buildTestApp(t, dialect, SMS)
    const user = await createUser(app, { role: 16, email: 'basic@example.com' })
    const admin = await createUser(app, { role: 64 })
    async function keysFor(u: { username: string }) {
      const c = new Client(app)
      await c.signIn(u.username)
      return c.apiKeys()
    }
    const mine = await keysFor(user)
    const theirs = await keysFor(admin)
    const forbidden = await app.inject({ method: 'POST', url: `/api/users/${user.id}/two-factor/send-verification`, headers: theirs, payload: { sms_phone: '+15557654321', current_password: PASSWORD } })
    t.equal(forbidden.statusCode, 403, "an Administrator cannot configure another user's 2FA")
    let res = await app.inject({ method: 'POST', url: `/users/${user.id}/two-factor/send-verification`, headers: mine, payload: { sms_phone: 'nope', current_password: PASSWORD } })
    t.equal(res.statusCode, 400, `POST /users/${user.id}/two-factor/send-verification answers 400`)
    res = await app.inject({ method: 'POST', url: `/users/${user.uuid}/two-factor/send-verification`, headers: mine, payload: { sms_phone: '+15557654321', current_password: PASSWORD } })
    t.equal(res.statusCode, 200, `POST /users/${user.uuid}/two-factor/send-verification answers 200`)
    res = await app.inject({ method: 'POST', url: `/users/${user.id}/two-factor/verify-code`, headers: mine, payload: { verification_code: '000000' } })
    t.equal(res.statusCode, 400, `POST /users/${user.id}/two-factor/verify-code answers 400`)
    res = await app.inject({ method: 'POST', url: `/users/${user.id}/two-factor/verify-code`, headers: mine, payload: { verification_code: await lastSms(app, '+15557654321') } })
    t.equal(res.statusCode, 200, `POST /users/${user.id}/two-factor/verify-code answers 200`)
    res = await app.inject({ method: 'PUT', url: `/users/${user.id}/two-factor`, headers: mine, payload: { email_enabled: true, current_password: PASSWORD } })
    t.equal(res.statusCode, 200, `PUT /users/${user.id}/two-factor answers 200`)
    const session = await app.inject({ url: '/session', headers: mine })
    t.same(session.json().two_factor, { sms_phone: '+15557654321', sms_enabled: true, email_enabled: true }, 'session.json().two_factor is the expected fields')
    res = await app.inject({ method: 'PUT', url: `/users/${user.id}/two-factor`, headers: mine, payload: { sms_enabled: false, email_enabled: false, current_password: PASSWORD } })
    t.equal(res.statusCode, 200, `PUT /users/${user.id}/two-factor answers 200`)
    t.same((await app.inject({ url: '/session', headers: mine })).json().two_factor, { sms_phone: null, sms_enabled: false, email_enabled: false }, 'two_factor is the expected fields')
  })
}
