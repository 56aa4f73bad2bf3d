// Frozen: never edit a migration that has shipped; add a new one.
import { type Kysely, sql } from 'kysely'

function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter.constructor.name === 'PostgresAdapter'
}

export async function up(db: Kysely<any>): Promise<void> {
  const pg = isPostgres(db)

  await db.schema
    .createTable('logos')
    .addColumn('id', 'integer', (c) => (pg ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey().autoIncrement()))
    .addColumn('uuid', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('filename', 'text', (c) => c.notNull())
    .addColumn('png', pg ? 'bytea' : 'blob', (c) => c.notNull())
    .addColumn('width', 'integer', (c) => c.notNull())
    .addColumn('height', 'integer', (c) => c.notNull())
    .addColumn('created_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('accounts')
    .addColumn('id', 'integer', (c) => (pg ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey().autoIncrement()))
    .addColumn('uuid', 'text', (c) => c.notNull().unique())
    .addColumn('container_name', 'text', (c) => c.notNull())
    .addColumn('custom_name', 'text')
    .addColumn('site_id', 'text')
    .addColumn('region', 'text')
    .addColumn('licensed_apps', 'text', (c) => c.notNull().defaultTo('')) // comma-separated codes: vm,was,cs
    .addColumn('licensed_assets', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('licensed_assets_limit', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('license_utilization', 'real', (c) => c.notNull().defaultTo(0)) // percent, kept on write for sorting
    .addColumn('license_expiration_date', 'bigint')
    .addColumn('logo_id', 'integer', (c) => c.references('logos.id').onDelete('set null'))
    .addColumn('notes', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('lms_customer_id', 'text')
    .addColumn('sso_username', 'text')
    .addColumn('domains', 'text', (c) => c.notNull().defaultTo('[]')) // JSON array
    .addColumn('instance_url', 'text')
    .addColumn('contact_email', 'text')
    .addColumn('search_text', 'text', (c) => c.notNull().defaultTo('')) // lower-cased searchable fields
    .addColumn('created_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('modified_at', 'bigint', (c) => c.notNull())
    .execute()
  for (const column of ['container_name', 'custom_name', 'site_id', 'region', 'licensed_assets', 'license_utilization', 'license_expiration_date', 'logo_id']) {
    await db.schema.createIndex(`accounts_${column}`).on('accounts').columns([column, 'id']).execute()
  }

  // Substring search that stays fast at 100,000 accounts: a trigram index, never a scan.
  if (pg) {
    await sql`create extension if not exists pg_trgm with schema public`.execute(db)
    await sql`create index accounts_search_trgm on accounts using gin (search_text public.gin_trgm_ops)`.execute(db)
  } else {
    await sql`create virtual table accounts_fts using fts5(search_text, content='accounts', content_rowid='id', tokenize='trigram')`.execute(db)
    await sql`create trigger accounts_fts_insert after insert on accounts begin
      insert into accounts_fts(rowid, search_text) values (new.id, new.search_text); end`.execute(db)
    await sql`create trigger accounts_fts_delete after delete on accounts begin
      insert into accounts_fts(accounts_fts, rowid, search_text) values ('delete', old.id, old.search_text); end`.execute(db)
    await sql`create trigger accounts_fts_update after update of search_text on accounts begin
      insert into accounts_fts(accounts_fts, rowid, search_text) values ('delete', old.id, old.search_text);
      insert into accounts_fts(rowid, search_text) values (new.id, new.search_text); end`.execute(db)
  }

  await db.schema
    .createTable('user_accounts')
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('account_id', 'integer', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('user_accounts_pk', ['user_id', 'account_id'])
    .execute()
  await db.schema.createIndex('user_accounts_account').on('user_accounts').column('account_id').execute()

  await db.schema
    .createTable('account_name_history')
    .addColumn('uuid', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'integer', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('user_id', 'integer', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('user_name', 'text', (c) => c.notNull())
    .addColumn('old_value', 'text')
    .addColumn('new_value', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('account_name_history_account').on('account_name_history').columns(['account_id', 'created_at']).execute()

  await db.schema
    .createTable('saved_searches')
    .addColumn('uuid', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('query', 'text', (c) => c.notNull()) // the Accounts page's query string
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('saved_searches_user_name', ['user_id', 'name'])
    .execute()
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward only')
}
