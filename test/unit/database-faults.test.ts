// PostgreSQL faults a client can only wait out answer 503 with Retry-After, not 500: a
// statement timeout and an exhausted pool, as the real server and pg-pool report them.
import { sql } from 'kysely'
import pg from 'pg'
import t from 'tap'
import { openDatabase } from '../../src/db/index.ts'
import { unavailableError } from '../../src/db/faults.ts'

const url = process.env.TEST_DATABASE_URL

t.test('PostgreSQL statement timeout and pool exhaustion are 503', { skip: url ? false : 'set TEST_DATABASE_URL' }, async (t) => {
  const { db } = openDatabase({ databaseUrl: url, dataDir: '/nonexistent' })
  t.teardown(() => db.destroy())
  const timedOut = await db
    .transaction()
    .execute(async (trx) => {
      await sql`set local statement_timeout = 50`.execute(trx)
      await sql`select pg_sleep(2)`.execute(trx)
    })
    .then(
      () => null,
      (err: unknown) => err,
    )
  t.match(timedOut, { code: '57014' }, 'the server cancels the statement')
  t.match(unavailableError(timedOut), { statusCode: 503, retryAfterSeconds: 10 }, 'a statement timeout is a 503 with Retry-After')

  const pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 100 })
  t.teardown(() => pool.end())
  const held = await pool.connect()
  const exhausted = await pool.connect().then(
    (client) => {
      client.release()
      return null
    },
    (err: unknown) => err,
  )
  held.release()
  t.ok(exhausted instanceof Error, 'no free connection in time')
  t.match(unavailableError(exhausted), { statusCode: 503 }, 'an exhausted pool is a 503')

  const syntax = await sql`select from nowhere_at_all`.execute(db).then(
    () => null,
    (err: unknown) => err,
  )
  t.equal(unavailableError(syntax), null, 'an error of the query itself stays an error (500)')
})
