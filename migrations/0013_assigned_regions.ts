// Frozen: never edit a migration that has shipped; add a new one.
import { type Kysely, sql } from 'kysely'

function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter.constructor.name === 'PostgresAdapter'
}

// For a user who is not an Administrator, the Accounts page shows how many accounts they have
// and its Region filter lists the regions of those accounts. Read from the assignments, that is
// a walk of all of them on every page view (20,000 for some users); kept here instead: per user
// how many (assigned_totals) and per user and region how many (assigned_regions), by triggers on
// the tables they derive from, so that every writer (the portal, an import, a copy to
// PostgreSQL) keeps them right. An account's deletion takes its assignments first, so that one
// trigger counts every withdrawal while the account's region can still be read.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('assigned_totals')
    .addColumn('user_id', 'integer', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('accounts', 'integer', (c) => c.notNull())
    .execute()
  await sql`insert into assigned_totals (user_id, accounts) select user_id, count(*) from user_accounts group by user_id`.execute(db)
  await db.schema
    .createTable('assigned_regions')
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('region', 'text', (c) => c.notNull())
    .addColumn('accounts', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('assigned_regions_pk', ['user_id', 'region'])
    .execute()
  await sql`insert into assigned_regions (user_id, region, accounts)
    select user_accounts.user_id, accounts.region, count(*) from user_accounts join accounts on accounts.id = user_accounts.account_id
    where accounts.region is not null group by user_accounts.user_id, accounts.region`.execute(db)

  // The statements of each trigger, the same on both databases but for how they refer to the row.
  const add = (user: string, region: string, from: string) => `insert into assigned_regions (user_id, region, accounts)
    select ${user}, ${region}, 1 from ${from} and ${region} is not null
    on conflict (user_id, region) do update set accounts = assigned_regions.accounts + 1`
  const withdraw = (users: string, region: string) => `update assigned_regions set accounts = accounts - 1 where user_id in (${users}) and region = ${region};
    delete from assigned_regions where user_id in (${users}) and region = ${region} and accounts <= 0`
  const triggers = {
    user_accounts_insert: ['after insert on user_accounts', `insert into assigned_totals (user_id, accounts) values (new.user_id, 1)
      on conflict (user_id) do update set accounts = assigned_totals.accounts + 1;
      ${add('new.user_id', 'accounts.region', 'accounts where accounts.id = new.account_id')}`],
    user_accounts_delete: ['after delete on user_accounts', `update assigned_totals set accounts = accounts - 1 where user_id = old.user_id;
      ${withdraw('old.user_id', '(select region from accounts where id = old.account_id)')}`],
    accounts_region_update: ['after update of region on accounts', `${withdraw('select user_id from user_accounts where account_id = old.id', 'old.region')};
      ${add('user_accounts.user_id', 'new.region', 'user_accounts where user_accounts.account_id = new.id')}`],
    accounts_assignments_delete: ['before delete on accounts', 'delete from user_accounts where account_id = old.id'],
  }
  for (const [name, [event, body]] of Object.entries(triggers)) {
    const when = name === 'accounts_region_update' ? 'old.region is distinct from new.region' : null
    if (isPostgres(db)) {
      await sql.raw(`create function ${name}() returns trigger language plpgsql as $$
        begin ${body}; return ${event.startsWith('before') ? 'old' : 'null'}; end $$`).execute(db)
      await sql.raw(`create trigger ${name} ${event} for each row ${when ? `when (${when})` : ''} execute function ${name}()`).execute(db)
    } else {
      await sql.raw(`create trigger ${name} ${event} ${when ? `when ${when.replace('is distinct from', 'is not')}` : ''} begin ${body}; end`).execute(db)
    }
  }
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward only')
}
