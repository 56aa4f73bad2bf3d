import type { Kysely } from 'kysely'
import type { Database } from '../../db/schema.ts'

type Db = Kysely<Database>

// The Resource Center links: stored as JSON under one settings key; no row means the defaults.

export const KEY_RESOURCE_LINKS = 'resource_links'

/** The stored JSON, or null when no list is stored. */
export async function readLinksRow(db: Db): Promise<string | null> {
  const row = await db.selectFrom('settings').select('value').where('key', '=', KEY_RESOURCE_LINKS).executeTakeFirst()
  return row?.value ?? null
}

/**
 * Writes the list only if the stored one is still `previous` (null: none stored), so that
 * an edit made meanwhile is never overwritten. Returns whether it was written.
 */
export async function swapLinksRow(db: Db, previous: string | null, value: string): Promise<boolean> {
  const now = Date.now()
  if (previous === null) {
    const res = await db.insertInto('settings').values({ key: KEY_RESOURCE_LINKS, value, updated_at: now }).onConflict((oc) => oc.column('key').doNothing()).executeTakeFirst()
    return Number(res.numInsertedOrUpdatedRows ?? 0) === 1
  }
  const res = await db.updateTable('settings').set({ value, updated_at: now }).where('key', '=', KEY_RESOURCE_LINKS).where('value', '=', previous).executeTakeFirst()
  return Number(res.numUpdatedRows) === 1
}

/** Deletes the stored list (the defaults apply again); returns whether there was one. */
export async function deleteLinksRow(db: Db): Promise<boolean> {
  const res = await db.deleteFrom('settings').where('key', '=', KEY_RESOURCE_LINKS).executeTakeFirst()
  return Number(res.numDeletedRows) > 0
}
