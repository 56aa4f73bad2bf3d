import type { CompiledQuery, Compilable, Kysely, Logger } from 'kysely'
import type SQLite from 'better-sqlite3'
import type { Database } from './schema.ts'

/**
 * SQLite connections whose reads may skip Kysely's driver (registered by openDatabase): the
 * connection, to ask whether a transaction is open, and the statement cache Kysely itself
 * prepares from (whose reading statements return rows made by rowMaker), and the database's
 * query log, told of these reads as Kysely tells it of its own.
 */
const directReads = new WeakMap<Kysely<Database>, { sqlite: SQLite.Database; prepare: (sql: string) => SQLite.Statement; log: Logger | undefined }>()
export function allowDirectReads(db: Kysely<Database>, sqlite: SQLite.Database, prepare: (sql: string) => SQLite.Statement, log?: Logger): void {
  directReads.set(db, { sqlite, prepare, log })
}

/**
 * A query whose shape never changes, built and compiled once per database and then run with
 * new parameter values. Kysely builds and compiles every query afresh, which on the hottest
 * paths (the session of every request) costs more than SQLite takes to answer.
 *
 *   const sessionById = preparedQuery((db) => db.selectFrom('sessions').selectAll().where('id', '=', ''))
 *   const rows = await sessionById(db, [id])
 *
 * The values replace the builder's placeholders in the order the compiled query lists them.
 * On SQLite, a read outside any transaction runs on the connection at once: Kysely's driver
 * would queue it behind a lock nobody holds, through several promises, for the same statement.
 * Inside a transaction (or on PostgreSQL) it goes through Kysely, which orders it.
 */
export function preparedQuery<R>(build: (db: Kysely<Database>) => Compilable<R>) {
  const compiled = new WeakMap<Kysely<Database>, CompiledQuery<R>>()
  return async (db: Kysely<Database>, parameters: readonly unknown[]): Promise<R[]> => {
    let query = compiled.get(db)
    if (!query) compiled.set(db, (query = build(db).compile()))
    if (query.parameters.length !== parameters.length) throw new Error(`prepared query takes ${query.parameters.length} parameters, given ${parameters.length}`)
    const direct = directReads.get(db)
    if (direct && !direct.sqlite.inTransaction) {
      const statement = direct.prepare(query.sql)
      if (statement.reader) {
        const started = performance.now()
        const rows = statement.all(parameters) as R[]
        void direct.log?.({ level: 'query', query, queryDurationMillis: performance.now() - started })
        return rows
      }
    }
    return (await db.executeQuery<R>({ ...query, parameters })).rows
  }
}

/**
 * preparedQuery for a query whose SQL depends on a few settings (a sort column, a page size):
 * one prepared query per key, built on first use. The key must name everything `build` puts
 * into the SQL text.
 *
 *   const pages = preparedQueries<AccountRow>()
 *   const rows = await pages(`${sort} ${limit}`, (db) => ...orderBy(sort).limit(sql.lit(limit)))(db, [offset])
 */
export function preparedQueries<R>() {
  const byKey = new Map<string, ReturnType<typeof preparedQuery<R>>>()
  return (key: string, build: (db: Kysely<Database>) => Compilable<R>) => {
    let query = byKey.get(key)
    if (!query) byKey.set(key, (query = preparedQuery(build)))
    return query
  }
}
