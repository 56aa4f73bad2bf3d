// Frozen: never edit a migration that has shipped; add a new one.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // An Administrator's session that is assisting (acting as) another user.
  await db.schema.alterTable('sessions').addColumn('assist_user_id', 'integer', (c) => c.references('users.id').onDelete('set null')).execute()
  await db.schema.alterTable('sessions').addColumn('assist_started_at', 'bigint').execute()
  await db.schema.createIndex('users_role_enabled').on('users').columns(['role', 'enabled']).execute()
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward only')
}
