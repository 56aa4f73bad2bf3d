import t from 'tap'
import { hash } from '@node-rs/argon2'
import { Client, buildTestApp, createUser, dialects } from '../helper.ts'
import { ARGON2_OPTIONS } from '../../src/lib/passwords.ts'
import { MAX_TEXTS_PER_HOUR } from '../../src/areas/two-factor/service.ts'
import { upsertTwoFactor } from '../../src/areas/two-factor/repository.ts'
import { requestPasswordReset } from '../../src/areas/auth/service.ts'

// Sign-in hardening: reset pages are never cached, the __Host- cookie over https, passwords
// compared in NFKC, a lock told about once it is over, and a cap on sign-in texts.

const INVALID = 'Invalid username or password.'

for (const dialect of dialects) {
  t.test(`${dialect}: the reset and setup pages are never cached`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const user = await createUser(app)
    await requestPasswordReset(app, { ip: '127.0.0.1' }, user.username)
    const mail = await app.db.selectFrom('outbox').select('body').orderBy('created_at', 'desc').executeTakeFirstOrThrow()
    const url = /\/reset-password\?token=\S+/.exec(mail.body)![0]
    const page = await app.inject({ url })
    t.equal(page.statusCode, 200, `GET ${url} answers 200`)
    t.equal(page.headers['cache-control'], 'no-store', 'page.headers[\'cache-control\'] is \'no-store\'')
    t.equal(page.headers['referrer-policy'], 'no-referrer', 'page.headers[\'referrer-policy\'] is \'no-referrer\'')
    const invalid = await app.inject({ url: '/reset-password?token=nope' })
    t.equal(invalid.headers['cache-control'], 'no-store', 'invalid.headers[\'cache-control\'] is \'no-store\'')
    const c = new Client(app)
    await c.get(url)
    const weak = await c.post('/reset-password', { token: new URL(url, 'http://x').searchParams.get('token')!, password: 'short', confirm: 'short' })
    t.equal(weak.statusCode, 422, 'POST /reset-password answers 422')
    t.equal(weak.headers['cache-control'], 'no-store', 'the form again, with its token')
    t.equal((await app.inject({ url: '/setup?token=nope' })).headers['cache-control'], 'no-store', 'cache-control is \'no-store\'')
  })

  t.test(`${dialect}: over https the session cookie is __Host-mssp_session`, async (t) => {
    const { app } = await buildTestApp(t, dialect, { BASE_URL: 'https://portal.test' })
    const user = await createUser(app)
    const c = new Client(app)
    const res = await c.signIn(user.username)
    t.equal(res.statusCode, 303, 'signing in answers 303')
    const cookies = [res.headers['set-cookie']].flat().filter((v): v is string => Boolean(v))
    const session = cookies.find((v) => v.startsWith('__Host-mssp_session='))
    t.ok(session, 'the __Host- prefixed cookie')
    t.match(session, /;\s*Secure/i, 'session matches /;\\s*Secure/i')
    t.match(session, /;\s*Path=\/(;|$)/i, 'session matches /;\\s*Path=\\/(;|$)/i')
    t.notMatch(session, /;\s*Domain=/i, 'session does not match /;\\s*Domain=/i')
    t.notOk(cookies.some((v) => v.startsWith('mssp_session=')), 'no unprefixed cookie')
    t.equal((await c.get('/accounts')).statusCode, 200, 'and it signs the user in')
  })

  t.test(`${dialect}: the same password in another Unicode form signs in`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    // é as one code point, and a full-width 4.
    const composed = 'Caf\u00e9-Horse-\uff142-Battery'
    const user = await createUser(app, { password: composed })
    const decomposed = 'Cafe\u0301-Horse-42-Battery'
    t.not(decomposed, composed, `decomposed is not ${composed}`)
    t.equal((await new Client(app).signIn(user.username, decomposed)).statusCode, 303, 'e + combining acute, ASCII 4')
    t.equal((await new Client(app).signIn(user.username, composed)).statusCode, 303, 'as it was set')
    t.equal((await new Client(app).signIn(user.username, 'Cafe-Horse-42-Battery')).statusCode, 401, 'without the accent: another password')

    // A hash made before passwords were normalised (of the typed form) still verifies.
    const old = await createUser(app, { password_hash: await hash(decomposed, ARGON2_OPTIONS) } as never)
    t.equal((await new Client(app).signIn(old.username, decomposed)).statusCode, 303, 'typed as before')
    const ascii = await createUser(app, { password_hash: await hash('Plain-Ascii-42-Horse', ARGON2_OPTIONS) } as never)
    t.equal((await new Client(app).signIn(ascii.username, 'Plain-Ascii-42-Horse')).statusCode, 303, 'ASCII hashes are unchanged')
  })

  t.test(`${dialect}: a lock answers as a wrong password while it lasts, and is told of once it is over`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const user = await createUser(app)
    for (let i = 0; i < 6; i++) t.equal((await new Client(app).signIn(user.username, 'wrong-password')).statusCode, 401, 'signing in answers 401')
    const locked = await app.db.selectFrom('users').select(['locked_until', 'failed_login_count']).where('id', '=', user.id).executeTakeFirstOrThrow()
    t.ok(locked.locked_until! > Date.now(), 'locked')
    const during = await new Client(app).signIn(user.username)
    t.equal(during.statusCode, 401, 'the right password while locked')
    t.match(during.body, INVALID, 'the same answer as a wrong password')
    t.notMatch(during.body, /locked/i, 'signing in does not show /locked/i')

    // The lock (2 minutes, after 6 failures) is over.
    await app.db.updateTable('users').set({ locked_until: Date.now() - 1000 }).where('id', '=', user.id).execute()
    const c = new Client(app)
    t.equal((await c.signIn(user.username)).statusCode, 303, 'signing in answers 303')
    const page = await c.get('/accounts')
    t.match(page.body, 'Your account was locked for 2 minutes after 6 failed sign-in attempts.', 'the answer to GET /accounts shows \'Your account was locked for 2 minutes after 6 fail…\'')
    t.notMatch((await c.get('/accounts')).body, 'Your account was locked', 'told once')
    const again = new Client(app)
    await again.signIn(user.username)
    t.notMatch((await again.get('/accounts')).body, 'Your account was locked', 'not at the next sign-in')
  })

  t.test(`${dialect}: sign-in texts are capped per user and hour; the code step offers the other ways`, async (t) => {
    const { app } = await buildTestApp(t, dialect, { SMS_VIA_OUTBOX: 'true' })
    const user = await createUser(app, { email: 'sms.user@example.com' })
    await upsertTwoFactor(app.db, user.id, { sms_phone: '+15551234567', email_enabled: 1 })
    const texts = () => app.db.selectFrom('outbox').select('id').where('kind', '=', 'sms').where('recipient', '=', '+15551234567').execute().then((r) => r.length)
    for (let i = 0; i < MAX_TEXTS_PER_HOUR; i++) {
      const c = new Client(app)
      t.equal((await c.signIn(user.username)).statusCode, 303, 'signing in answers 303')
      t.match((await c.get('/login/verify')).body, 'We sent a text message', 'the answer to GET /login/verify shows \'We sent a text message\'')
    }
    t.equal(await texts(), MAX_TEXTS_PER_HOUR, `texts() is ${MAX_TEXTS_PER_HOUR}`)
    const c = new Client(app)
    t.equal((await c.signIn(user.username)).statusCode, 303, 'the password is still accepted')
    t.equal(await texts(), MAX_TEXTS_PER_HOUR, 'no further text')
    const page = await c.get('/login/verify')
    t.equal(page.statusCode, 200, 'GET /login/verify answers 200')
    t.match(page.body, 'Text messages cannot be sent to your phone right now', 'the answer to GET /login/verify shows \'Text messages cannot be sent to your phone right now\'')
    t.match(page.body, 'send a code to your backup e-mail', 'the answer to GET /login/verify shows \'send a code to your backup e-mail\'')
    t.match(page.body, 'one of your recovery codes', 'the answer to GET /login/verify shows \'one of your recovery codes\'')
    t.notMatch(page.body, 'We sent a text message', 'the answer to GET /login/verify does not show \'We sent a text message\'')
    t.notMatch(page.body, 'Resend Code', 'the answer to GET /login/verify does not show \'Resend Code\'')
    const resend = await c.post('/login/verify/resend', { channel: 'sms' })
    t.equal(resend.statusCode, 429, 'POST /login/verify/resend answers 429')
    t.equal(await texts(), MAX_TEXTS_PER_HOUR, `texts() is ${MAX_TEXTS_PER_HOUR}`)
    // The backup e-mail still works.
    t.equal((await c.post('/login/verify/resend', { channel: 'email' })).statusCode, 200, 'POST /login/verify/resend answers 200')
    t.ok(await app.db.selectFrom('outbox').select('id').where('recipient', '=', 'sms.user@example.com').executeTakeFirst(), 'a code by e-mail')
  })
}
