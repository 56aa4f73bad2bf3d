// The move from SQLite to PostgreSQL: seed a portal on SQLite, copy it across, and find
// everything there: users sign in with their passwords, accounts, logos, history, keys.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { seedDemo } from '../../src/demo/seed.ts'
import { copyToPostgres } from '../../src/ops/copy-to-postgres.ts'
import { Client } from '../helper.ts'
import { copyFixture } from '../support/copy-fixture.ts'

const url = process.env.TEST_DATABASE_URL
if (!url) {
  t.plan(0, 'PostgreSQL tests skipped: TEST_DATABASE_URL is not set')
} else {
  t.test('copy-to-postgres keeps every row, id and password', async (t) => {
    const { dataDir, schema, target, openSqlite } = await copyFixture(t, url, 'copy')
    const sqliteApp = await openSqlite()
    const creds = await seedDemo(sqliteApp)
    const before = await sqliteApp.db.selectFrom('accounts').select(['id', 'uuid', 'logo_id']).orderBy('id').execute()
    await sqliteApp.close()

    const lines: string[] = []
    const { counts, notCopied } = await copyToPostgres(dataDir, target, (l) => lines.push(l))
    t.same(notCopied, [], 'every row copied')
    t.equal(counts.accounts, before.length)
    t.ok(counts.users >= 7 && counts.logos >= 3 && counts.audit_events > 0)
    await t.rejects(copyToPostgres(dataDir, target, () => {}), /already has users/, 'only into an empty database')

    const keys = { SESSION_KEY: fs.readFileSync(path.join(dataDir, 'session.key'), 'utf8').trim(), SECRETS_KEY: fs.readFileSync(path.join(dataDir, 'secrets.key'), 'utf8').trim() }
    const pgApp = await buildApp(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: dataDir, DATABASE_URL: url, ...keys }), { pgSchema: schema })
    t.teardown(() => pgApp.close())
    const after = await pgApp.db.selectFrom('accounts').select(['id', 'uuid', 'logo_id']).orderBy('id').execute()
    t.same(after, before, 'the same accounts, ids and logos')
    const c = new Client(pgApp)
    const res = await c.signIn(creds.administrator, creds.password)
    t.equal(res.statusCode, 303, 'the Administrator signs in with the same password')
    const page = await c.get('/accounts?q=acme')
    t.match(page.body, 'Acme Logistics GmbH', 'the search works on PostgreSQL')
    const created = await pgApp.db.insertInto('logos').values({ uuid: crypto.randomUUID(), name: 'n', filename: 'n.png', png: Buffer.from([1]), width: 1, height: 1, created_by: null, created_at: 1, updated_at: 1 }).returning('id').executeTakeFirstOrThrow()
    t.ok(created.id > Math.max(...before.map((b) => b.logo_id ?? 0)), 'new rows continue after the copied ids')
  })
}
