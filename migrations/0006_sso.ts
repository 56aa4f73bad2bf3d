// Frozen: never edit a migration that has shipped; add a new one.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // Ed25519 keys that sign single sign-on assertions. In the database so that every portal
  // process signs with the same key; the private key is encrypted with the secrets key.
  await db.schema
    .createTable('sso_signing_keys')
    .addColumn('kid', 'text', (c) => c.primaryKey())
    .addColumn('private_key', 'text', (c) => c.notNull())
    .addColumn('public_jwk', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('retired_at', 'bigint')
    .execute()
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward only')
}
