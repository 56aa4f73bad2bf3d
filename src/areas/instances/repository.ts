import type { Insertable, Kysely } from 'kysely'
import type { Database, SsoSigningKeysTable } from '../../db/schema.ts'

type Db = Kysely<Database>

// The portal's single sign-on signing keys (sso_signing_keys).

/** The newest key not retired (ties broken by kid, so that every process picks the same one). */
export function findActiveKey(db: Db) {
  return db.selectFrom('sso_signing_keys').selectAll().where('retired_at', 'is', null).orderBy('created_at', 'desc').orderBy('kid').executeTakeFirst()
}

export async function insertKey(db: Db, key: Insertable<SsoSigningKeysTable>): Promise<void> {
  await db.insertInto('sso_signing_keys').values(key).execute()
}

export async function retireActiveKeys(db: Db, now: number): Promise<void> {
  await db.updateTable('sso_signing_keys').set({ retired_at: now }).where('retired_at', 'is', null).execute()
}

export async function deleteKeysRetiredBefore(db: Db, cutoff: number): Promise<void> {
  await db.deleteFrom('sso_signing_keys').where('retired_at', '<', cutoff).execute()
}

/** The public keys of the active key and of those retired since `since`, newest first. */
export function keysPublishedSince(db: Db, since: number) {
  return db
    .selectFrom('sso_signing_keys')
    .select('public_jwk')
    .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>=', since)]))
    .orderBy('created_at', 'desc')
    .execute()
}
