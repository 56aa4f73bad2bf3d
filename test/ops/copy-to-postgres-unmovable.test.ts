// Issue 15, item 16 (copy-to-postgres): SQLite keeps text PostgreSQL cannot (a NUL, bytes
// that are not UTF-8 such as a lone surrogate). The copy names each row it cannot move, and
// each row that refers to one, and copies everything else.
import t from 'tap'
import pg from 'pg'
import { copyToPostgres } from '../../src/ops/copy-to-postgres.ts'
import { assign, createAccount, createUser } from '../helper.ts'
import { copyFixture } from '../support/copy-fixture.ts'

const url = process.env.TEST_DATABASE_URL
if (!url) {
  t.plan(0, 'PostgreSQL tests skipped: TEST_DATABASE_URL is not set')
} else {
  t.test('copy-to-postgres names the rows it cannot move and copies the rest', async (t) => {
    const { dataDir, target, openSqlite } = await copyFixture(t, url, 'copybad')

    // A real SQLite portal holding good rows and rows PostgreSQL cannot store.
    const sqliteApp = await openSqlite()
    const good = await createUser(sqliteApp, { role: 16, name: 'Grace Good' })
    const nul = await createUser(sqliteApp, { role: 16, name: 'Nel\u0000Null' })
    const plain = await createAccount(sqliteApp, { container_name: 'Plain Account', notes: 'fine, with U+FFFD \uFFFD as typed' })
    const nulNotes = await createAccount(sqliteApp, { container_name: 'Nul Notes', notes: 'a\u0000b' })
    const surrogate = await createAccount(sqliteApp, { container_name: 'Lone Surrogate', custom_name: 'x\uD800y' })
    await assign(sqliteApp, good.id, [plain.id, nulNotes.id])
    await assign(sqliteApp, nul.id, [plain.id])
    const accountsBefore = await sqliteApp.db.selectFrom('accounts').select('id').execute()
    await sqliteApp.close()

    const lines: string[] = []
    const { counts, notCopied } = await copyToPostgres(dataDir, target, (l) => lines.push(l))

    const named = notCopied.map((r) => `${r.table} ${r.key}`).sort()
    t.same(named, [
      `accounts id=${nulNotes.id}`,
      `accounts id=${surrogate.id}`,
      `user_accounts user_id=${good.id}, account_id=${nulNotes.id}`,
      `user_accounts user_id=${nul.id}, account_id=${plain.id}`,
      `users id=${nul.id}`,
    ], 'each row that cannot move, and each row referring to one, is named by table and key')
    const why = (table: string, key: string) => notCopied.find((r) => r.table === table && r.key === key)!.reason
    t.match(why('users', `id=${nul.id}`), /^name holds a NUL character/)
    t.match(why('accounts', `id=${nulNotes.id}`), /^notes holds a NUL character/)
    t.match(why('accounts', `id=${surrogate.id}`), /^custom_name holds bytes that are not UTF-8/)
    t.match(why('user_accounts', `user_id=${nul.id}, account_id=${plain.id}`), /^refers to a row that was not copied/)
    t.equal(counts.accounts, accountsBefore.length - 2)
    t.equal(counts.user_accounts, 1)
    for (const r of notCopied) t.ok(lines.some((l) => l.includes(`${r.table} ${r.key}: ${r.reason}`)), `the output names ${r.table} ${r.key}`)
    t.ok(lines.some((l) => /^5 rows were not copied/.test(l)))

    // Everything else is there, in PostgreSQL.
    const pgDb = new pg.Client({ connectionString: target })
    await pgDb.connect()
    t.teardown(() => pgDb.end())
    const users = (await pgDb.query('select id, name from users order by id')).rows
    t.same(users, [{ id: good.id, name: 'Grace Good' }])
    const accounts = (await pgDb.query('select id, notes from accounts order by id')).rows
    t.same(accounts.map((a) => a.id), [plain.id])
    t.equal(accounts[0].notes, 'fine, with U+FFFD \uFFFD as typed', 'a real U+FFFD copies as it is')
    t.same((await pgDb.query('select user_id, account_id from user_accounts')).rows, [{ user_id: good.id, account_id: plain.id }])
  })
}
