// My Account by the guide ("Update Your User Account", "Change Your Password", "Generate
// Your API Keys"): labels, the profile, the e-mail change, the password change, the API
// Keys tab, and who may reach it. Two-factor routes are covered in two-factor.test.ts.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { BASIC, Client, PASSWORD, buildTestApp, createUser, dialects, lastMessageTo } from '../helper.ts'

const NEW_PASSWORD = 'Lantern-Quartz-93-Ribbon!'

async function userRow(app: FastifyInstance, id: number) {
  return app.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
}

async function outboxCount(app: FastifyInstance): Promise<number> {
  return (await app.db.selectFrom('outbox').select('id').execute()).length
}

/** Keys from the page that shows them once (the readonly Access Key / Secret Key boxes). */
function keysFrom(body: string): { accessKey: string; secretKey: string } {
  const accessKey = /id="access-key"[^>]*value="([0-9a-f]+)"/.exec(body)?.[1]
  const secretKey = /id="secret-key"[^>]*value="([0-9a-f]+)"/.exec(body)?.[1]
  if (!accessKey || !secretKey) throw new Error('no keys in the page')
  return { accessKey, secretKey }
}

const apiKeysHeader = (k: { accessKey: string; secretKey: string }) => ({ 'x-apikeys': `accessKey=${k.accessKey};secretKey=${k.secretKey}` })

async function signedIn(app: FastifyInstance, overrides: Parameters<typeof createUser>[1] = {}) {
  const user = await createUser(app, overrides)
  const c = new Client(app)
  const res = await c.signIn(user.username)
  if (res.statusCode !== 303 || res.headers.location !== '/accounts') throw new Error(`sign-in failed: ${res.statusCode} ${String(res.headers.location)}`)
  await c.get('/my-account')
  return { user, c }
}

for (const dialect of dialects) {
  t.test(`${dialect}: My Account`, async (t) => {
    t.test('the page carries the guide labels and the API Keys tab', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { c } = await signedIn(app, { name: 'Ada Lovelace', email: 'ada@example.com' })
      const page = await c.get('/my-account')
      t.equal(page.statusCode, 200, 'GET /my-account answers 200')
      t.match(page.body, /<h1>My Account<\/h1>/, 'the answer to GET /my-account shows /<h1>My Account<\\/h1>/')
      t.match(page.body, /<label for="name">Name<\/label>/, 'the answer to GET /my-account shows /<label for="name">Name<\\/label>/')
      t.match(page.body, /<label for="email">Email<\/label>/, 'the answer to GET /my-account shows /<label for="email">Email<\\/label>/')
      t.match(page.body, /<label for="current_password">Current Password<\/label>/, 'the answer to GET /my-account shows /<label for="current_password">Current Password<\\/label>/')
      t.match(page.body, /<label for="new_password">New Password<\/label>/, 'the answer to GET /my-account shows /<label for="new_password">New Password<\\/label>/')
      t.match(page.body, /<button type="submit" class="primary">Save<\/button>/, 'the answer to GET /my-account shows /<button type="submit" class="primary">Save<\\/button>/')
      t.match(page.body, 'Enable Two Factor Authentication', 'the answer to GET /my-account shows \'Enable Two Factor Authentication\'')
      t.match(page.body, />Enable<\/a>/, 'the answer to GET /my-account shows />Enable<\\/a>/')
      t.match(page.body, /<a href="\/my-account\/api-keys"[^>]*>API Keys<\/a>/, 'the API Keys tab')
      t.match(page.body, 'value="Ada Lovelace"', 'the name is filled in')
      t.match(page.body, 'value="ada@example.com"', 'the e-mail is filled in')
      t.match(page.body, 'At least 12 characters', 'the password rule is shown')
      const tab = await c.get('/my-account/api-keys')
      t.equal(tab.statusCode, 200, 'GET /my-account/api-keys answers 200')
      t.match(tab.body, /<a href="\/my-account\/api-keys" aria-current="page">API Keys<\/a>/, 'the tab is current')
      t.match(tab.body, />Generate<\/a>/, 'the answer to GET /my-account/api-keys shows />Generate<\\/a>/')
      t.match(tab.body, 'You have no API keys yet.', 'the answer to GET /my-account/api-keys shows \'You have no API keys yet.\'')
    })

    t.test('updating the name', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { user, c } = await signedIn(app, { email: 'ada@example.com' })
      const before = await outboxCount(app)
      const res = await c.post('/my-account/profile', { name: '  Ada King  ', email: 'ada@example.com' })
      t.equal(res.statusCode, 303, 'POST /my-account/profile answers 303')
      t.equal(res.headers.location, '/my-account', 'POST /my-account/profile redirects to \'/my-account\'')
      const page = await c.get('/my-account')
      t.match(page.body, 'Your account changes were saved.', 'success message')
      t.match(page.body, 'value="Ada King"', 'the answer to GET /my-account shows \'value="Ada King"\'')
      const row = await userRow(app, user.id)
      t.equal(row.name, 'Ada King', 'trimmed and saved')
      t.equal(row.email, 'ada@example.com', 'e-mail untouched')
      t.equal(await outboxCount(app), before, 'no mail for a name change')
      const event = await app.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.profile_update').executeTakeFirst()
      t.ok(event, 'audited')

      const empty = await c.post('/my-account/profile', { name: '   ', email: 'ada@example.com' })
      t.equal(empty.statusCode, 422, 'an empty name is refused')
      t.match(empty.body, 'Enter your name.', 'the answer to POST /my-account/profile shows \'Enter your name.\'')
      t.equal((await userRow(app, user.id)).name, 'Ada King', 'the refused change kept the name')
    })

    t.test('changing the e-mail needs the current password and tells the old address', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { user, c } = await signedIn(app, { name: 'Ada', email: 'old@example.com' })
      const before = await outboxCount(app)

      let res = await c.post('/my-account/profile', { name: 'Ada', email: 'new@example.com' })
      t.equal(res.statusCode, 422, 'refused without the current password')
      t.match(res.body, 'Enter your current password to change your e-mail address.', 'the answer to POST /my-account/profile shows \'Enter your current password to change your e-mail address.\'')
      t.match(res.body, 'value="new@example.com"', 'what was typed is kept')
      res = await c.post('/my-account/profile', { name: 'Renamed', email: 'new@example.com', current_password: 'Wrong-Password-1!' })
      t.equal(res.statusCode, 422, 'refused with a wrong password')
      let row = await userRow(app, user.id)
      t.equal(row.email, 'old@example.com', 'the e-mail is unchanged')
      t.equal(row.name, 'Ada', 'and so is the name submitted with it')
      t.equal(await outboxCount(app), before, 'no mail sent')

      res = await c.post('/my-account/profile', { name: 'Ada', email: 'not-an-address', current_password: PASSWORD })
      t.equal(res.statusCode, 422, 'an invalid e-mail is refused')
      t.match(res.body, 'Enter a valid e-mail address.', 'the answer to POST /my-account/profile shows \'Enter a valid e-mail address.\'')
      t.match(res.body, /id="email"[^>]*aria-invalid="true"/, 'the field is marked')
      t.equal((await userRow(app, user.id)).email, 'old@example.com', 'the refused change kept the e-mail address')

      res = await c.post('/my-account/profile', { name: 'Ada', email: 'New@Example.com', current_password: PASSWORD })
      t.equal(res.statusCode, 303, 'POST /my-account/profile answers 303')
      row = await userRow(app, user.id)
      t.equal(row.email, 'new@example.com', 'changed (and lower-cased)')
      const notice = await lastMessageTo(app, 'old@example.com')
      t.ok(notice, 'a notice went to the OLD address')
      t.equal(notice?.kind, 'email', 'the notice is an e-mail')
      t.match(notice?.subject, 'e-mail address was changed', 'the notice says the e-mail address was changed')
      t.match(notice?.body, 'new@example.com', 'the notice names the new address')
      t.notOk(await lastMessageTo(app, 'new@example.com'), 'not (only) to the new one')
      t.match((await c.get('/my-account')).body, 'Your account changes were saved.', 'the answer to GET /my-account shows \'Your account changes were saved.\'')
    })

    t.test('change password: wrong current password, the self-service policy, success', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { user, c } = await signedIn(app, { email: 'pat@example.com' })
      const other = new Client(app)
      await other.signIn(user.username)
      t.equal((await other.get('/accounts')).statusCode, 200, 'a second client is signed in')

      let res = await c.post('/my-account/password', { current_password: 'Wrong-Password-1!', new_password: NEW_PASSWORD })
      t.equal(res.statusCode, 422, 'a wrong current password is refused')
      t.match(res.body, 'The current password is not correct.', 'the answer to POST /my-account/password shows \'The current password is not correct.\'')
      t.match(res.body, /id="current_password"[^>]*aria-invalid="true"/, 'the answer to POST /my-account/password shows /id="current_password"[^>]*aria-invalid="true"/')

      const refused: Array<[string, string, RegExp]> = [
        ['Short-1a!', 'too short', /at least 12 characters/],
        ['lowercase-only-42!', 'no uppercase letter', /at least 12 characters/],
        ['UPPERCASE-ONLY-42!', 'no lowercase letter', /at least 12 characters/],
        ['No-Digits-Here-At-All!', 'no number', /at least 12 characters/],
        ['NoSpecials1234abc', 'no special character', /at least 12 characters/],
        ['Password-1234!', 'a common word dressed up', /too common/],
        [PASSWORD, 'the same as the current one', /different from the current one/],
      ]
      for (const [pw, why, message] of refused) {
        res = await c.post('/my-account/password', { current_password: PASSWORD, new_password: pw })
        t.equal(res.statusCode, 422, `refused: ${why}`)
        t.match(res.body, message, `the answer to POST /my-account/password shows ${message}`)
      }
      let row = await userRow(app, user.id)
      t.equal(row.password_hash, user.password_hash, 'the password is unchanged so far')
      t.equal((await other.get('/accounts')).statusCode, 200, 'the second client is still signed in')

      const mailsBefore = await outboxCount(app)
      res = await c.post('/my-account/password', { current_password: PASSWORD, new_password: NEW_PASSWORD })
      t.equal(res.statusCode, 303, 'POST /my-account/password answers 303')
      t.equal(res.headers.location, '/my-account', 'POST /my-account/password redirects to \'/my-account\'')
      const page = await c.get('/my-account')
      t.equal(page.statusCode, 200, 'the current session still works')
      t.match(page.body, 'Your password was changed.', 'the answer to GET /my-account shows \'Your password was changed.\'')
      const gone = await other.get('/accounts')
      t.equal(gone.statusCode, 303, 'the other session is signed out')
      t.match(gone.headers.location, /^\/login/, 'GET /accounts redirects to /^\\/login/')
      row = await userRow(app, user.id)
      t.not(row.password_hash, user.password_hash, 'the password hash changed')
      t.ok(row.password_changed_at >= user.password_changed_at, 'the password change time does not go back')
      t.equal(await outboxCount(app), mailsBefore + 1, 'one notice mail')
      const notice = await lastMessageTo(app, 'pat@example.com')
      t.match(notice?.subject, 'password was changed', 'notice.subject matches \'password was changed\'')

      const fresh = new Client(app)
      t.equal((await fresh.signIn(user.username, PASSWORD)).statusCode, 401, 'the old password no longer signs in')
      const again = await fresh.signIn(user.username, NEW_PASSWORD)
      t.equal(again.statusCode, 303, 'signing in answers 303')
      t.equal(again.headers.location, '/accounts', 'the new password signs in')
    })

    t.test('a user without an e-mail address gets the password notice at the username', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { user, c } = await signedIn(app, { email: null })
      await c.post('/my-account/password', { current_password: PASSWORD, new_password: NEW_PASSWORD })
      t.match((await lastMessageTo(app, user.username))?.subject, 'password was changed', '(lastMessageTo(app, user.username)).subject matches \'password was changed\'')
    })

    t.test('API Keys tab: the Generate window warns, keys are shown once and replace the old ones', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { user, c } = await signedIn(app)
      await c.get('/my-account/api-keys')

      const window = await c.get('/my-account/api-keys/generate')
      t.equal(window.statusCode, 200, 'GET /my-account/api-keys/generate answers 200')
      t.match(window.body, 'Generate API Keys', 'the answer to GET /my-account/api-keys/generate shows \'Generate API Keys\'')
      t.match(window.body, 'Any existing API keys are replaced when you click the Generate button.', 'the answer to GET /my-account/api-keys/generate shows \'Any existing API keys are replaced when you click …\'')
      t.match(window.body, 'You must update the applications where the previous API keys were used.', 'the answer to GET /my-account/api-keys/generate shows \'You must update the applications where the previou…\'')
      t.match(window.body, /<button type="submit" class="primary">Generate<\/button>/, 'the answer to GET /my-account/api-keys/generate shows /<button type="submit" class="primary">Generate<\\/button>/')
      t.match(window.body, '<html', 'without htmx: a page of its own')
      const fragment = await c.get('/my-account/api-keys/generate', { 'hx-request': 'true' })
      t.notMatch(fragment.body, '<html', 'with htmx: the plane only')
      t.match(fragment.body, 'role="alertdialog"', 'the answer to GET /my-account/api-keys/generate shows \'role="alertdialog"\'')

      const first = await c.post('/my-account/api-keys')
      t.equal(first.statusCode, 200, 'POST /my-account/api-keys answers 200')
      t.equal(first.headers['cache-control'], 'no-store', 'the keys page is not cached')
      t.match(first.body, 'Access Key', 'the answer to POST /my-account/api-keys shows \'Access Key\'')
      t.match(first.body, 'Secret Key', 'the answer to POST /my-account/api-keys shows \'Secret Key\'')
      t.match(first.body, 'Copy and save these keys', 'the answer to POST /my-account/api-keys shows \'Copy and save these keys\'')
      const keys1 = keysFrom(first.body)
      t.match(keys1.accessKey, /^[0-9a-f]{64}$/, 'the access key is 64 hex digits')
      t.match(keys1.secretKey, /^[0-9a-f]{64}$/, 'the secret key is 64 hex digits')
      const stored = await app.db.selectFrom('api_keys').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow()
      t.notMatch(JSON.stringify(stored), keys1.secretKey, 'the secret is not stored as is')

      const me = await app.inject({ url: '/api/session', headers: apiKeysHeader(keys1) })
      t.equal(me.statusCode, 200, 'the keys work')
      t.equal(me.json().username, user.username, 'the keys sign in as the user')

      const tab = await c.get('/my-account/api-keys')
      t.match(tab.body, 'You have API keys.', 'the answer to GET /my-account/api-keys shows \'You have API keys.\'')
      t.notMatch(tab.body, keys1.secretKey, 'the secret is never shown again')
      t.notMatch(tab.body, keys1.accessKey, 'nor the access key')

      const second = await c.post('/my-account/api-keys', {}, { 'hx-request': 'true' })
      t.equal(second.statusCode, 200, 'POST /my-account/api-keys answers 200')
      t.equal(second.headers['cache-control'], 'no-store', 'the keys are not cached')
      t.notMatch(second.body, '<html', 'with htmx: the plane only')
      const keys2 = keysFrom(second.body)
      t.not(keys2.accessKey, keys1.accessKey, 'a new access key')
      t.not(keys2.secretKey, keys1.secretKey, 'a new secret key')
      const old = await app.inject({ url: '/api/session', headers: apiKeysHeader(keys1) })
      t.equal(old.statusCode, 401, 'the old keys stop working at once')
      const now = await app.inject({ url: '/api/session', headers: apiKeysHeader(keys2) })
      t.equal(now.statusCode, 200, 'the new keys work')
      t.equal((await app.db.selectFrom('api_keys').selectAll().where('user_id', '=', user.id).execute()).length, 1, 'one pair per user')

      const noCsrf = await app.inject({ method: 'POST', url: '/my-account/api-keys', headers: { ...c.headers(), 'content-type': 'application/x-www-form-urlencoded' }, payload: '' })
      t.equal(noCsrf.statusCode, 403, 'generating needs the CSRF token')
      t.equal((await app.inject({ url: '/api/session', headers: apiKeysHeader(keys2) })).statusCode, 200, 'and a refused request replaces nothing')
    })

    t.test('a Basic (role 16) user can use all of My Account', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { user, c } = await signedIn(app, { role: BASIC, name: 'Basic Bea', email: 'bea@example.com' })
      const page = await c.get('/my-account')
      t.equal(page.statusCode, 200, 'GET /my-account answers 200')
      t.match(page.body, 'Enable Two Factor Authentication', 'the answer to GET /my-account shows \'Enable Two Factor Authentication\'')
      let res = await c.post('/my-account/profile', { name: 'Bea Basic', email: 'bea2@example.com', current_password: PASSWORD })
      t.equal(res.statusCode, 303, 'profile')
      t.equal((await userRow(app, user.id)).email, 'bea2@example.com', 'the e-mail change with the current password is saved')
      t.ok(await lastMessageTo(app, 'bea@example.com'), 'notice to the old address')
      await c.get('/my-account')
      res = await c.post('/my-account/password', { current_password: PASSWORD, new_password: NEW_PASSWORD })
      t.equal(res.statusCode, 303, 'password')
      t.equal((await c.get('/my-account/api-keys')).statusCode, 200, 'API Keys tab')
      t.equal((await c.get('/my-account/api-keys/generate')).statusCode, 200, 'Generate window')
      res = await c.post('/my-account/api-keys')
      t.equal(res.statusCode, 200, 'generate')
      const me = await app.inject({ url: '/api/session', headers: apiKeysHeader(keysFrom(res.body)) })
      t.equal(me.statusCode, 200, 'GET /api/session answers 200')
      t.equal(me.json().permissions, BASIC, 'the keys act with the user\'s own role')
      t.equal((await c.get('/my-account/two-factor/setup')).statusCode, 200, 'Two-Factor Setup')
      t.equal((await c.get('/my-account/two-factor/authenticator')).statusCode, 200, 'authenticator app')
    })

    t.test('an e-mail stored with capitals does not count as changed when only the name is edited', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      // createAdministrator (CLI, setup) keeps the e-mail as typed, capitals included.
      const { user, c } = await signedIn(app, { name: 'Ada', email: 'Ada@Example.com' })
      const page = await c.get('/my-account')
      t.match(page.body, 'value="Ada@Example.com"', 'the answer to GET /my-account shows \'value="Ada@Example.com"\'')
      const res = await c.post('/my-account/profile', { name: 'Ada K', email: 'Ada@Example.com' })
      t.equal(res.statusCode, 303, 'saving the name alone needs no password')
      t.equal((await userRow(app, user.id)).name, res.statusCode === 303 ? 'Ada K' : 'Ada', 'consistent with the answer')
    })

    t.test('a reset link mailed before a My Account password change stops working', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { user, c } = await signedIn(app, { email: 'rae@example.com' })
      const anon = new Client(app)
      await anon.get('/forgot-password')
      await anon.post('/forgot-password', { username: user.username })
      const mail = await lastMessageTo(app, 'rae@example.com')
      const token = /token=(\S+)/.exec(mail?.body ?? '')?.[1]
      t.ok(token, 'a reset link was mailed')
      await c.get('/my-account')
      t.equal((await c.post('/my-account/password', { current_password: PASSWORD, new_password: NEW_PASSWORD })).statusCode, 303, 'POST /my-account/password answers 303')
      const link = await new Client(app).get(`/reset-password?token=${token}`)
      t.not(link.statusCode, 200, 'the old link is void after the change')
    })

    t.test('API keys cannot change the second factor through the My Account pages', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const { c } = await signedIn(app)
      const keys = keysFrom((await c.post('/my-account/api-keys')).body)
      const headers = { ...apiKeysHeader(keys), 'content-type': 'application/x-www-form-urlencoded' }
      // Keys reach the REST API; they skip the CSRF check and the second factor by design.
      const page = await app.inject({ url: '/my-account/two-factor/authenticator', headers: apiKeysHeader(keys) })
      t.not(page.statusCode, 200, 'the authenticator setup page refuses API keys')
      const disable = await app.inject({ method: 'POST', url: '/my-account/two-factor/disable', headers, payload: `current_password=${encodeURIComponent(PASSWORD)}` })
      t.not(disable.statusCode, 303, 'Disable refuses API keys')
      const profile = await app.inject({ method: 'POST', url: '/my-account/profile', headers, payload: `name=Hijacked&email=evil%40example.com&current_password=${encodeURIComponent(PASSWORD)}` })
      t.not(profile.statusCode, 303, 'the profile form refuses API keys')
    })

    t.test('Two-Factor Setup cannot be used to send unlimited texts', async (t) => {
      const { app } = await buildTestApp(t, dialect, { SMS_VIA_OUTBOX: 'true' })
      const { c } = await signedIn(app, { role: BASIC })
      const statuses: number[] = []
      // Next on the Mobile Phone Number step, over and over, with a different number each time.
      for (let i = 0; i < 10; i++) statuses.push((await c.post('/my-account/two-factor/phone', { phone: `+1555010${1000 + i}`, current_password: PASSWORD })).statusCode)
      const texts = (await app.db.selectFrom('outbox').select('id').where('kind', '=', 'sms').execute()).length
      t.equal(statuses[0], 200, 'the first number gets its code')
      t.ok(texts <= 4, `at most a few texts in a row (sent ${texts})`)
    })

    t.test('signed-out visitors are sent to the Log in page', async (t) => {
      const { app } = await buildTestApp(t, dialect)
      const user = await createUser(app)
      const c = new Client(app)
      for (const url of ['/my-account', '/my-account/api-keys', '/my-account/api-keys/generate', '/my-account/two-factor/setup', '/my-account/two-factor/disable']) {
        const res = await c.get(url)
        t.equal(res.statusCode, 303, `GET ${url}`)
        t.equal(res.headers.location, `/login?next=${encodeURIComponent(url)}`, 'and back after signing in')
      }
      const hx = await c.get('/my-account', { 'hx-request': 'true' })
      t.equal(hx.headers['hx-redirect'], '/login', 'htmx requests too')
      await c.get('/login')
      for (const url of ['/my-account/profile', '/my-account/password', '/my-account/api-keys']) {
        const res = await c.post(url, { name: 'X', email: '', current_password: PASSWORD, new_password: NEW_PASSWORD })
        t.equal(res.statusCode, 303, `POST ${url}`)
        t.match(res.headers.location, /^\/login/, `POST ${url} redirects to /^\\/login/`)
      }
      const row = await userRow(app, user.id)
      t.equal(row.password_hash, user.password_hash, 'nothing changed')
      t.equal((await app.db.selectFrom('api_keys').selectAll().execute()).length, 0, 'no keys made')
      // Signing in from ?next= comes back to My Account.
      await c.get('/login?next=%2Fmy-account')
      const back = await c.post('/login', { username: user.username, password: PASSWORD, next: '/my-account' })
      t.equal(back.headers.location, '/my-account', 'POST /login redirects to \'/my-account\'')
    })
  })
}
