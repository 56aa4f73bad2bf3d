// Frozen: never edit a migration that has shipped; add a new one.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('two_factor')
    .addColumn('user_id', 'integer', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('sms_phone', 'text') // E.164, set once verified
    .addColumn('pending_phone', 'text') // being verified during setup
    .addColumn('email_enabled', 'integer', (c) => c.notNull().defaultTo(0)) // backup e-mail codes
    .addColumn('totp_secret', 'text') // encrypted (AES-256-GCM with the secrets key)
    .addColumn('pending_totp_secret', 'text') // encrypted, until the first code confirms it
    .addColumn('totp_last_step', 'bigint') // the last accepted 30-second step: no replays
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('recovery_codes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('code_hash', 'text', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('recovery_codes_user').on('recovery_codes').column('user_id').execute()

  // A signed-in session may still owe its second factor (pending_2fa = 1): it reaches
  // nothing but the code step until the code is given.
  await db.schema.alterTable('sessions').addColumn('pending_2fa', 'integer', (c) => c.notNull().defaultTo(0)).execute()
  await db.schema.alterTable('sessions').addColumn('code_attempts', 'integer', (c) => c.notNull().defaultTo(0)).execute()
  // Codes bound to one sign-in attempt (the session row's id) or one setup.
  await db.schema.alterTable('one_time_codes').addColumn('bound_to', 'text').execute()
  await db.schema.createIndex('one_time_codes_bound').on('one_time_codes').column('bound_to').execute()
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward only')
}
