// Frozen: never edit a migration that has shipped; add a new one.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // One pair of keys per user: generating new keys replaces the row.
  await db.schema
    .createTable('api_keys')
    .addColumn('user_id', 'integer', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('access_key', 'text', (c) => c.notNull().unique())
    .addColumn('secret_hash', 'text', (c) => c.notNull()) // HMAC-SHA256 of the secret key
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .execute()
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward only')
}
