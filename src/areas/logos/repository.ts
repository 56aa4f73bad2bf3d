import type { Kysely } from 'kysely'
import type { Database } from '../../db/schema.ts'

type Db = Kysely<Database>

/** Logos for the Logo drop-down: names only, never the image bytes. */
export function listLogoChoices(db: Db) {
  return db.selectFrom('logos').select(['id', 'uuid', 'name']).orderBy('name').orderBy('id').execute()
}

export function findLogoByUuid(db: Db, uuid: string) {
  return db.selectFrom('logos').select(['id', 'uuid', 'name', 'filename', 'width', 'height', 'created_at', 'updated_at']).where('uuid', '=', uuid).executeTakeFirst()
}
