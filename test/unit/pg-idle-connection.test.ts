// A PostgreSQL connection killed while idle in the pool (a server restart, an operator's
// pg_terminate_backend) is reported and replaced; it must not end the process.
import t from 'tap'
import pg from 'pg'
import { sql } from 'kysely'
import { openDatabase } from '../../src/db/index.ts'

const url = process.env.TEST_DATABASE_URL

t.test('postgres: an idle connection killed by the server is reported, and the next query works', { skip: url ? false : 'TEST_DATABASE_URL is not set' }, async (t) => {
  const lost: Error[] = []
  const { db } = openDatabase({ databaseUrl: url, dataDir: '/nonexistent', observer: { idleConnectionLost: (err) => lost.push(err) } })
  t.teardown(() => db.destroy())
  const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db)
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  t.teardown(() => admin.end())
  await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid])
  for (let i = 0; i < 100 && lost.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(lost.length, 1, 'the lost connection was reported once, not thrown')
  const again = await sql<{ one: number }>`select 1 as one`.execute(db)
  t.equal(again.rows[0]!.one, 1, 'the next query opens another connection and answers')
})
