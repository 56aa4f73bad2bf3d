import type { CompiledQuery, Compilable, Kysely } from 'kysely'
import type SQLite from 'better-sqlite3'
import type { Database } from './schema.ts'
import { dbQueryDuration } from '../ops/metrics.ts'

/**
 * SQLite connections whose reads may skip Kysely's driver (registered by openDatabase), and
 * whether a transaction is open on them.
 */
const directReads = new WeakMap<Kysely<Database>, SQLite.Database>()
export function allowDirectReads(db: Kysely<Database>, sqlite: SQLite.Database): void {
  directReads.set(db, sqlite)
}

const observeSelect = dbQueryDuration.series(['select', 'ok'])

/**
 * A query whose shape never changes, built and compiled once per database and then run with
 * new parameter values. Kysely builds and compiles every query afresh, which on the hottest
 * paths (the session of every request) costs more than SQLite takes to answer.
 *
 *   const sessionById = preparedQuery((db) => db.selectFrom('sessions').selectAll().where('id', '=', ''))
 *   const rows = await sessionById(db, [id])
 *
 * The values replace the builder's placeholders in the order the compiled query lists them.
 * On SQLite, a read outside any transaction runs on the connection at once, on a statement of
 * its own that returns arrays, made into rows by rowMaker: Kysely's driver would queue it
 * behind a lock nobody holds, through several promises, and better-sqlite3 builds a row object
 * a property at a time (half of a 50-row page's read). Inside a transaction (or on
 * PostgreSQL) it goes through Kysely, which orders it.
 */
export function preparedQuery<R>(build: (db: Kysely<Database>) => Compilable<R>) {
  const prepared = new WeakMap<Kysely<Database>, { query: CompiledQuery<R>; direct: DirectRead | null | undefined }>()
  return async (db: Kysely<Database>, parameters: readonly unknown[]): Promise<R[]> => {
    let entry = prepared.get(db)
    if (!entry) prepared.set(db, (entry = { query: build(db).compile(), direct: undefined }))
    const { query } = entry
    if (query.parameters.length !== parameters.length) throw new Error(`prepared query takes ${query.parameters.length} parameters, given ${parameters.length}`)
    const sqlite = directReads.get(db)
    if (sqlite && !sqlite.inTransaction) {
      if (entry.direct === undefined) entry.direct = directRead(sqlite, query.sql)
      if (entry.direct) {
        const started = performance.now()
        const rows = (entry.direct.statement.all(parameters) as unknown[][]).map(entry.direct.makeRow) as R[]
        observeSelect((performance.now() - started) / 1000)
        return rows
      }
    }
    return (await db.executeQuery<R>({ ...query, parameters })).rows
  }
}

interface DirectRead {
  statement: SQLite.Statement
  makeRow: (values: unknown[]) => Record<string, unknown>
}
/** A read's own statement, in raw mode, with its row maker; null for a statement that writes. */
function directRead(sqlite: SQLite.Database, sql: string): DirectRead | null {
  const statement = sqlite.prepare(sql)
  if (!statement.reader) return null
  statement.raw(true)
  return { statement, makeRow: rowMaker(statement.columns().map((c) => c.name)) }
}

const rowMakers = new Map<string, (values: unknown[]) => Record<string, unknown>>()
/**
 * A function making a row object from a raw row's values: an object literal with the
 * columns' names, so that every row of a query shares one shape (fast to build and to read).
 * Later columns win over earlier ones of the same name, as in better-sqlite3's own rows.
 */
export function rowMaker(names: string[]): (values: unknown[]) => Record<string, unknown> {
  const key = JSON.stringify(names)
  let make = rowMakers.get(key)
  if (!make) {
    // The names are the query's own column names, written as JSON strings: never code.
    make = new Function('v', `return { ${names.map((name, i) => `${JSON.stringify(name)}: v[${i}]`).join(', ')} }`) as (values: unknown[]) => Record<string, unknown>
    rowMakers.set(key, make)
  }
  return make
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
