// A signed-in page view records the session's last use (once a minute). That write is
// best-effort: while another connection holds the lock it needs, the page still answers at
// once, and the session's last use is recorded when the lock ends.
import path from 'node:path'
import SQLite from 'better-sqlite3'
import pg from 'pg'
import t from 'tap'
import { sql } from 'kysely'
import { Client, buildTestApp, createUser, dialects } from '../helper.ts'

/** Takes the lock the last-seen write needs, from another connection; returns its release. */
async function holdSessionsLock(dialect: string, app: import('fastify').FastifyInstance, dataDir: string): Promise<() => Promise<void>> {
  if (dialect === 'sqlite') {
    const other = new SQLite(path.join(dataDir, 'portal.sqlite'))
    other.exec('begin exclusive')
    return async () => {
      other.exec('rollback')
      other.close()
    }
  }
  const schema = (await sql<{ schema: string }>`select current_schema() as schema`.execute(app.db)).rows[0]!.schema
  const other = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL })
  await other.connect()
  await other.query('begin')
  await other.query(`select id from ${schema}.sessions for update`)
  return async () => {
    await other.query('rollback')
    await other.end()
  }
}

for (const dialect of dialects) {
  t.test(`${dialect}: a page view does not wait for the session's last-seen write`, async (t) => {
    const { app, dataDir } = await buildTestApp(t, dialect)
    const user = await createUser(app)
    const client = new Client(app)
    t.equal((await client.signIn(user.username)).statusCode, 303, 'signing in answers 303')
    t.equal((await client.get('/accounts')).statusCode, 200, 'signed in')
    const stale = Date.now() - 90_000
    await app.db.updateTable('sessions').set({ last_seen_at: stale }).execute()

    const release = await holdSessionsLock(dialect, app, dataDir)
    let released = false
    t.teardown(async () => {
      if (!released) await release()
    })
    const started = Date.now()
    const page = await Promise.race([
      client.get('/accounts'),
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 3_000)),
    ])
    t.equal(page?.statusCode, 200, `GET /accounts answers 200 while the lock is held (after ${Date.now() - started} ms)`)
    released = true
    await release()

    // The touch is retried until the lock ends: the session stays alive.
    let lastSeen = stale
    for (let i = 0; i < 100 && lastSeen === stale; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      lastSeen = (await app.db.selectFrom('sessions').select('last_seen_at').executeTakeFirstOrThrow()).last_seen_at
    }
    t.ok(lastSeen >= started, 'the last use is recorded once the lock ends')
  })
}
