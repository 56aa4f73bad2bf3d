import type { CompiledQuery, Compilable, Kysely } from 'kysely'
import type { Database } from './schema.ts'

/**
 * A query whose shape never changes, built and compiled once per database and then run with
 * new parameter values. Kysely builds and compiles every query afresh, which on the hottest
 * paths (the session of every request) costs more than SQLite takes to answer.
 *
 *   const sessionById = preparedQuery((db) => db.selectFrom('sessions').selectAll().where('id', '=', ''))
 *   const rows = await sessionById(db, [id])
 *
 * The values replace the builder's placeholders in the order the compiled query lists them.
 */
export function preparedQuery<R>(build: (db: Kysely<Database>) => Compilable<R>) {
  const compiled = new WeakMap<Kysely<Database>, CompiledQuery<R>>()
  return async (db: Kysely<Database>, parameters: readonly unknown[]): Promise<R[]> => {
    let query = compiled.get(db)
    if (!query) compiled.set(db, (query = build(db).compile()))
    if (query.parameters.length !== parameters.length) throw new Error(`prepared query takes ${query.parameters.length} parameters, given ${parameters.length}`)
    return (await db.executeQuery<R>({ ...query, parameters })).rows
  }
}
