import type { Kysely } from 'kysely'
import type { Database } from '../../db/schema.ts'

type Db = Kysely<Database>

export async function replaceApiKeys(db: Db, row: { user_id: number; access_key: string; secret_hash: string; created_at: number }): Promise<void> {
  await db
    .insertInto('api_keys')
    .values({ ...row, last_used_at: null })
    .onConflict((oc) => oc.column('user_id').doUpdateSet({ access_key: row.access_key, secret_hash: row.secret_hash, created_at: row.created_at, last_used_at: null }))
    .execute()
}

export function findKeyWithUser(db: Db, accessKey: string) {
  return db
    .selectFrom('api_keys')
    .innerJoin('users', 'users.id', 'api_keys.user_id')
    .selectAll('users')
    .select(['api_keys.secret_hash', 'api_keys.last_used_at as key_last_used_at'])
    .where('api_keys.access_key', '=', accessKey)
    .executeTakeFirst()
}

export async function touchApiKey(db: Db, userId: number, now: number): Promise<void> {
  await db.updateTable('api_keys').set({ last_used_at: now }).where('user_id', '=', userId).execute()
}

export async function lastApiKeyUse(db: Db, userId: number): Promise<number | null> {
  const row = await db.selectFrom('api_keys').select('last_used_at').where('user_id', '=', userId).executeTakeFirst()
  return row?.last_used_at ?? null
}

export async function hasApiKeys(db: Db, userId: number): Promise<boolean> {
  return Boolean(await db.selectFrom('api_keys').select('user_id').where('user_id', '=', userId).executeTakeFirst())
}

/** Revokes the user's API keys (disabled, or their password reset): deleted, so nothing revives them. Whether they had any. */
export async function revokeApiKeys(db: Db, userId: number): Promise<boolean> {
  const result = await db.deleteFrom('api_keys').where('user_id', '=', userId).executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}
