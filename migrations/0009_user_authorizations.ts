// Frozen: never edit a migration that has shipped; add a new one.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // Tenable's per-user authorizations: may the user's API keys authenticate, and may the user
  // sign in with a password (0/1). SAML sign-in does not exist in the portal (always false).
  await db.schema.alterTable('users').addColumn('api_permitted', 'integer', (c) => c.notNull().defaultTo(1)).execute()
  await db.schema.alterTable('users').addColumn('password_permitted', 'integer', (c) => c.notNull().defaultTo(1)).execute()
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward only')
}
