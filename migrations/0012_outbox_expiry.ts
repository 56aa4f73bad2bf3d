// Frozen: never edit a migration that has shipped; add a new one.
import type { Kysely } from 'kysely'

// A message that carries a secret (a reset link, a verification code) records when that
// secret expires: the outbox clears its content then (src/lib/messages.ts), so that an
// outbox kept without SMTP does not hold live-looking links and codes forever.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('outbox').addColumn('expires_at', 'bigint').execute()
  await db.schema.createIndex('outbox_expires_at').on('outbox').column('expires_at').execute()
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward only')
}
