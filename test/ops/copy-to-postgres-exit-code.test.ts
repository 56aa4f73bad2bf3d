// `mssp-portal copy-to-postgres` exits 3 when it copied everything it could but left rows
// behind (text PostgreSQL cannot store): a script must not take a partial copy for a complete
// one. A complete copy exits 0.
import os from 'node:os'
import t from 'tap'
import pg from 'pg'
import { type Tap, createUser } from '../helper.ts'
import { copyFixture } from '../support/copy-fixture.ts'
import { runNode, type RunResult } from '../support/processes.ts'

const url = process.env.TEST_DATABASE_URL

t.setTimeout(120_000)

function copyCommand(dataDir: string, to: string): Promise<RunResult> {
  return runNode(['--import', 'tsx', 'src/cli.ts', 'copy-to-postgres', '--to', to], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: os.tmpdir(), NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: dataDir },
    timeout: 60_000,
  })
}

/** A SQLite portal's data folder with the given users' names, and an empty PostgreSQL schema to copy into. */
async function setup(t: Tap, names: string[]): Promise<{ dataDir: string; target: string }> {
  const { dataDir, target, openSqlite } = await copyFixture(t, url!, 'copyexit')
  const app = await openSqlite()
  for (const name of names) await createUser(app, { role: 16, name })
  await app.close()
  return { dataDir, target }
}


if (!url) {
  t.plan(0, 'PostgreSQL tests skipped: TEST_DATABASE_URL is not set')
} else {
  t.test('rows left behind: exit code 3, the rest copied', async (t) => {
    const { dataDir, target } = await setup(t, ['Grace Good', 'Nel\u0000Null'])
    const run = await copyCommand(dataDir, target)
    t.equal(run.code, 3, `exits 3 (${run.stderr})`)
    t.match(run.stdout, /1 row was not copied/, 'names what was left behind')
    t.notMatch(run.stdout, /^Done\./m, 'does not say Done')
    const pgDb = new pg.Client({ connectionString: target })
    await pgDb.connect()
    t.teardown(() => pgDb.end())
    t.same((await pgDb.query('select name from users')).rows, [{ name: 'Grace Good' }], 'the other rows were copied')
  })

  t.test('every row copied: exit code 0', async (t) => {
    const { dataDir, target } = await setup(t, ['Grace Good'])
    const run = await copyCommand(dataDir, target)
    t.equal(run.code, 0, `exits 0 (${run.stderr})`)
    t.match(run.stdout, /^Done\./m)
  })
}
