// Frozen: never edit a migration that has shipped; add a new one.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // When the pending authenticator secret was made: it can be confirmed only while it is
  // fresh (only a POST with the current password makes one, and only its answer shows it).
  await db.schema.alterTable('two_factor').addColumn('pending_totp_created_at', 'bigint').execute()
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward only')
}
