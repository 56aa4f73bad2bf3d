// Sessions are read from the database on every request; a change made by another process (a
// second portal, the command line) to the same SQLite file must count on the very next request.
import path from 'node:path'
import t, { type Test } from 'tap'
import SQLite from 'better-sqlite3'
import { buildTestApp, Client, createUser } from '../helper.ts'

async function signedIn(t: Test, role = 64) {
  const { app, dataDir } = await buildTestApp(t, 'sqlite')
  const user = await createUser(app, { role })
  const client = new Client(app)
  await client.signIn(user.username)
  t.equal((await client.get('/accounts')).statusCode, 200, 'GET /accounts answers 200')
  t.equal((await client.get('/accounts')).statusCode, 200, 'a second page')
  const elsewhere = new SQLite(path.join(dataDir, 'portal.sqlite'))
  t.teardown(() => elsewhere.close())
  return { app, user, client, elsewhere }
}

t.test('a user disabled by another process is signed out on the next request', async (t) => {
  const { user, client, elsewhere } = await signedIn(t)
  elsewhere.prepare('update users set enabled = 0 where id = ?').run(user.id)
  const res = await client.get('/accounts')
  t.equal(res.statusCode, 303, 'GET /accounts answers 303')
  t.match(res.headers.location, /^\/login/, 'GET /accounts redirects to /^\\/login/')
})

t.test('a session deleted by another process ends on the next request', async (t) => {
  const { client, elsewhere } = await signedIn(t)
  elsewhere.prepare('delete from sessions').run()
  t.equal((await client.get('/accounts')).statusCode, 303, 'GET /accounts answers 303')
})

t.test('a role changed by another process applies on the next request', async (t) => {
  const { app, user, client, elsewhere } = await signedIn(t, 16)
  t.equal((await client.get('/users')).statusCode, 403, 'a Basic user may not open Users')
  elsewhere.prepare('update users set role = 64 where id = ?').run(user.id)
  t.equal((await client.get('/users')).statusCode, 200, 'now an Administrator')
  await app.db.updateTable('users').set({ role: 16 }).where('id', '=', user.id).execute()
  t.equal((await client.get('/users')).statusCode, 403, 'and back, through the portal\'s own connection')
})
