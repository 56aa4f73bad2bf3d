// preparedQuery: compiled once per database, answering for each call's own values, on both databases.
import t from 'tap'
import { buildTestApp, createUser, dialects } from '../helper.ts'
import { preparedQuery } from '../../src/db/prepared.ts'
import { insertUser } from '../../src/areas/auth/repository.ts'
import { uuid } from '../../src/lib/tokens.ts'

const userByName = preparedQuery((db) => db.selectFrom('users').select(['username', 'role']).where('username', '=', '').where('role', '>=', 0))

for (const dialect of dialects) {
  t.test(`${dialect}: a prepared query takes new values on every call`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const admin = await createUser(app, { role: 64 })
    const basic = await createUser(app, { role: 16 })
    t.same(await userByName(app.db, [admin.username, 0]), [{ username: admin.username, role: 64 }])
    t.same(await userByName(app.db, [basic.username, 0]), [{ username: basic.username, role: 16 }])
    t.same(await userByName(app.db, [basic.username, 20]), [], 'the second value counts too')
    await app.db.transaction().execute(async (trx) => {
      t.same(await userByName(trx, [admin.username, 64]), [{ username: admin.username, role: 64 }], 'inside a transaction')
    })
  })
}

t.test('the wrong number of values is refused, not run', async (t) => {
  const { app } = await buildTestApp(t, 'sqlite')
  const byId = preparedQuery((db) => db.selectFrom('users').select('username').where('id', '=', 0))
  await t.rejects(byId(app.db, [1, 2]), /takes 1 parameters, given 2/)
})

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
  const read = userByName(app.db, ['pending@example.com', 0])
  release()
  await rolledBack
  t.same(await read, [], 'it waits for the transaction and reads what was committed')
})

t.test('sqlite: rows read directly are the rows Kysely reads, column for column', async (t) => {
  const { app } = await buildTestApp(t, 'sqlite')
  const admin = await createUser(app, { role: 64, name: 'Ädmin “quoted”' })
  await createUser(app, { role: 16 })
  // Every column of users, a column named like one of them (the later one wins, as in
  // better-sqlite3's own rows), nulls, numbers and text.
  const build = (db: typeof app.db) => db.selectFrom('users').selectAll().select((eb) => eb.val('shadowed').as('name')).where('id', '>=', 0).orderBy('id')
  const direct = await preparedQuery(build)(app.db, ['shadowed', 0])
  const viaKysely = await build(app.db).execute()
  t.same(direct, viaKysely)
  t.equal(direct.length, 2)
  t.equal(direct[0]!.name, 'shadowed')
  t.equal(direct[0]!.username, admin.username)
  t.same(Object.keys(direct[0]!), Object.keys(viaKysely[0]!), 'the same columns in the same order')
})
