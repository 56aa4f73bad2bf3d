// Reads on the portal's one SQLite connection: ordered after an open transaction, and their
// rows (made by the statement cache's rowMaker) the rows better-sqlite3 itself makes.
import t from 'tap'
import { buildTestApp, createUser } from '../helper.ts'
import { insertUser } from '../../src/areas/auth/repository.ts'
import { uuid } from '../../src/lib/tokens.ts'

const userByName = (db: Parameters<typeof insertUser>[0], username: string) => db.selectFrom('users').select(['username', 'role']).where('username', '=', username).execute()

t.test('sqlite: a read from outside a transaction never sees its uncommitted rows', async (t) => {
  const { app } = await buildTestApp(t, 'sqlite')
  const model = await createUser(app, { role: 16 })
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  let inserted!: () => void
  const insertedYet = new Promise<void>((resolve) => (inserted = resolve))
  const rolledBack = app.db
    .transaction()
    .execute(async (trx) => {
      const { id: _id, ...row } = model
      await insertUser(trx, { ...row, uuid: uuid(), username: 'pending@example.com' })
      inserted()
      await gate
      throw new Error('rolled back')
    })
    .catch(() => undefined)
  await insertedYet
  const read = userByName(app.db, 'pending@example.com')
  release()
  await rolledBack
  t.same(await read, [], 'it waits for the transaction and reads what was committed')
})

t.test('sqlite: rows Kysely reads are better-sqlite3’s own rows, column for column', async (t) => {
  const { app } = await buildTestApp(t, 'sqlite')
  const admin = await createUser(app, { role: 64, name: 'Ädmin “quoted”' })
  await createUser(app, { role: 16 })
  // Every column of users, a column named like one of them (the later one wins, as in
  // better-sqlite3's own rows), nulls, numbers and text.
  const query = app.db.selectFrom('users').selectAll().select((eb) => eb.val('shadowed').as('name')).where('id', '>=', 0).orderBy('id')
  const viaKysely = await query.execute()
  const compiled = query.compile()
  const own = app.sqlite!.prepare(compiled.sql).all(...compiled.parameters) as Array<Record<string, unknown>>
  t.same(viaKysely, own, 'the same rows as better-sqlite3 makes')
  t.equal(viaKysely.length, 2, 'both users')
  t.equal(viaKysely[0]!.name, 'shadowed', 'the later column of a name wins')
  t.equal(viaKysely[0]!.username, admin.username, 'the first user first')
  t.same(Object.keys(viaKysely[0]!), Object.keys(own[0]!), 'the same columns in the same order')
})
