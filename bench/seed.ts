// The bench's data, through its own fast path: migrations as the portal runs them, then
// accounts, assignments and API keys in bulk (one transaction on SQLite, arrays through
// `unnest` on PostgreSQL), so that 100,000 accounts take seconds and 1,000,000 a minute or two.
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import { sql } from 'kysely'
import { openDatabase } from '../src/db/index.ts'
import { migrateToLatest } from '../src/db/migrations.ts'
import { createAdministrator } from '../src/areas/auth/service.ts'
import { insertUser, newUser } from '../src/areas/auth/repository.ts'
import { replaceApiKeys } from '../src/areas/api/repository.ts'
import { apiKeyHashKey } from '../src/areas/api/service.ts'
import { searchTextOf, utilizationOf } from '../src/areas/accounts/repository.ts'
import { hmac } from '../src/lib/tokens.ts'
import type { FastifyInstance } from 'fastify'

export const PASSWORD = 'Bench-Password-42!x'
/** Every portal process of the bench gets this key, so the bench can make API keys it accepts. */
export const SECRETS_KEY = 'b'.repeat(64)
export const PG_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

const WORDS = ['Acme', 'Bluefin', 'Cedar', 'Delta', 'Evergreen', 'Fjord', 'Golden', 'Harbor', 'Iron', 'Juniper', 'Kestrel', 'Lumen', 'Maple', 'North', 'Orchid', 'Pacific', 'Quarry', 'River', 'Saffron', 'Tide', 'Umbra', 'Vantage', 'Willow', 'Xenon', 'Yellow', 'Zephyr']
const KINDS = ['Logistics', 'Capital', 'Health', 'Freight', 'Utilities', 'Maritime', 'Dental', 'Insurance', 'Manufacturing', 'Retail', 'Aerospace', 'Education', 'Credit Union', 'Telecom', 'Biotech', 'Shipping', 'Builders', 'Library', 'Hospitality', 'Energy']
const REGIONS = ['US', 'EU', 'UK', 'AP', 'CA', 'ME']
const APPS = ['vm', 'vm,was', 'vm,was,cs', 'was', 'cs', 'vm,cs']
/** A word in the notes of exactly RARE_COUNT accounts whatever the size: the "rare word" search. */
export const RARE_WORD = 'wombat'
const RARE_COUNT = 5

/** A small seeded generator (mulberry32): the same accounts on every run. */
function randomFrom(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!
}

const COLUMNS = ['uuid', 'container_name', 'custom_name', 'site_id', 'region', 'licensed_apps', 'licensed_assets', 'licensed_assets_limit',
  'license_utilization', 'license_expiration_date', 'notes', 'domains', 'search_text', 'created_at', 'modified_at'] as const
type AccountRow = unknown[] // in COLUMNS order

/** `count` realistic accounts; words drawn independently, so a word is spread over the sort order as in real names. */
function* accountRows(count: number): Generator<AccountRow> {
  const pick = randomFrom(42)
  const now = Date.now()
  const rareEvery = Math.floor(count / RARE_COUNT)
  for (let i = 0; i < count; i++) {
    const rare = i % rareEvery === 7 ? ` escalated to the ${RARE_WORD} desk` : ''
    const a = {
      container_name: `${pick(WORDS)} ${pick(WORDS)} ${pick(KINDS)} ${i}`,
      custom_name: i % 5 === 0 ? `${pick(WORDS)} managed ${i}` : null,
      site_id: `${REGIONS[i % REGIONS.length]}-${String(i).padStart(6, '0')}`,
      licensed_apps: APPS[i % APPS.length]!,
      notes: (i % 3 === 0 ? `Contact ${pick(WORDS)} team; ticket ${i * 17}` : '') + rare,
    }
    const assets = (i * 37) % 5000
    const limit = 1000 + ((i * 91) % 5000)
    yield [crypto.randomUUID(), a.container_name, a.custom_name, a.site_id, REGIONS[i % REGIONS.length], a.licensed_apps, assets, limit,
      utilizationOf(assets, limit), now + (((i * 53) % 800) - 100) * 86_400_000, a.notes, '[]', searchTextOf(a), now, now]
  }
}

export interface ApiKey { header: string }
export interface Dataset {
  dialect: 'sqlite' | 'postgres'
  accounts: number
  dataDir: string
  pgSchema?: string
  /** An account in the middle of the sort order, for Account Details. */
  detailsUuid: string
  /** API keys by username. */
  apiKeys: Record<string, string>
  drop(): Promise<void>
}

/**
 * The users every dataset has: an Administrator and the goal's analysts with 300 and with 20,000
 * assigned accounts (spread evenly over the sort order; as many as there are below that).
 */
export const USERS = {
  admin: 'bench@bench.example',
  few: 'few@bench.example',
  many: 'many@bench.example',
} as const
export function assignedCount(user: keyof typeof USERS, accounts: number): number | null {
  return user === 'admin' ? null : Math.min(user === 'few' ? 300 : 20_000, accounts)
}

export async function prepareDataset(dialect: 'sqlite' | 'postgres', accounts: number): Promise<Dataset> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-bench-'))
  const pgSchema = dialect === 'postgres' ? `bench_${accounts}_${process.pid}` : undefined
  const { db } = openDatabase({ dataDir, ...(pgSchema ? { databaseUrl: PG_URL, pgSchema } : {}) })
  const drop = async () => {
    fs.rmSync(dataDir, { recursive: true, force: true })
    if (pgSchema) {
      const { db: admin } = openDatabase({ dataDir: os.tmpdir(), databaseUrl: PG_URL })
      await sql`drop schema if exists ${sql.id(pgSchema)} cascade`.execute(admin)
      await admin.destroy()
    }
  }
  try {
    if (pgSchema) await sql`create schema ${sql.id(pgSchema)}`.execute(db)
    await migrateToLatest(db, { pgSchema })
    const admin = await createAdministrator(db, { username: USERS.admin, name: 'Bench', email: null, password: PASSWORD })
    await db.destroy()

    if (dialect === 'sqlite') seedSqlite(path.join(dataDir, 'portal.sqlite'), accounts)
    else await seedPostgres(pgSchema!, accounts)

    const reopened = openDatabase({ dataDir, ...(pgSchema ? { databaseUrl: PG_URL, pgSchema } : {}) }).db
    try {
      const users: Array<{ id: number; username: string }> = [{ id: admin.id, username: USERS.admin }]
      for (const key of ['few', 'many'] as const) {
        const user = await insertUser(reopened, newUser({ username: USERS[key], name: key, email: null, passwordHash: admin.password_hash, role: 24, now: Date.now() }))
        users.push({ id: user.id, username: USERS[key] })
        const count = assignedCount(key, accounts)!
        const step = Math.floor(accounts / count)
        const ids = Array.from({ length: count }, (_, i) => 1 + i * step)
        if (pgSchema) await sql`insert into user_accounts (user_id, account_id, created_at) select ${user.id}, unnest(${ids}::int[]), ${Date.now()}`.execute(reopened)
        else for (let i = 0; i < ids.length; i += 5000) await reopened.insertInto('user_accounts').values(ids.slice(i, i + 5000).map((account_id) => ({ user_id: user.id, account_id, created_at: Date.now() }))).execute()
      }
      // PostgreSQL's autovacuum would have analyzed the tables after such inserts (SQLite is never analyzed by the portal).
      if (pgSchema) await sql`analyze accounts, user_accounts`.execute(reopened)
      // API keys as the portal makes them (api/service.ts), with the key the bench gives the portal.
      const hashKey = apiKeyHashKey({ keys: { secrets: Buffer.from(SECRETS_KEY, 'hex') } } as FastifyInstance)
      const apiKeys: Record<string, string> = {}
      for (const user of users) {
        const accessKey = crypto.randomBytes(32).toString('hex')
        const secretKey = crypto.randomBytes(32).toString('hex')
        await replaceApiKeys(reopened, { user_id: user.id, access_key: accessKey, secret_hash: hmac(hashKey, secretKey), created_at: Date.now() })
        apiKeys[user.username] = `accessKey=${accessKey};secretKey=${secretKey}`
      }
      const middle = await reopened.selectFrom('accounts').select('uuid').where('id', '=', Math.ceil(accounts / 2)).executeTakeFirstOrThrow()
      return { dialect, accounts, dataDir, pgSchema, detailsUuid: middle.uuid, apiKeys, drop }
    } finally {
      await reopened.destroy()
    }
  } catch (err) {
    await drop()
    throw err
  }
}

/**
 * Rows in one transaction, with the accounts' indexes and full-text triggers dropped meanwhile
 * and then made again from their own definitions (sqlite_master): a bulk build instead of an
 * update per row, and no copy of the migrations' SQL here.
 */
function seedSqlite(file: string, count: number): void {
  const db = new SQLite(file)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = OFF')
  const definitions = db.prepare(`select type, name, sql from sqlite_master where tbl_name = 'accounts' and type in ('index', 'trigger') and sql is not null`).all() as Array<{ type: string; name: string; sql: string }>
  const insert = db.prepare(`insert into accounts (${COLUMNS.join(', ')}) values (${COLUMNS.map(() => '?').join(', ')})`)
  db.transaction(() => {
    for (const d of definitions) db.exec(`drop ${d.type} "${d.name}"`)
    for (const row of accountRows(count)) insert.run(...row)
    for (const d of definitions) db.exec(d.sql)
    db.exec(`insert into accounts_fts(accounts_fts) values ('rebuild')`)
  })()
  db.close()
}

async function seedPostgres(pgSchema: string, count: number): Promise<void> {
  const { db } = openDatabase({ dataDir: os.tmpdir(), databaseUrl: PG_URL, pgSchema })
  try {
    const types = ['text', 'text', 'text', 'text', 'text', 'text', 'int', 'int', 'float8', 'bigint', 'text', 'text', 'text', 'bigint', 'bigint']
    // The accounts' indexes (the trigram index above all) built once after the rows, from their own definitions.
    const { rows: indexes } = await sql<{ indexname: string; indexdef: string }>`select indexname, indexdef from pg_indexes
      where schemaname = ${pgSchema} and tablename = 'accounts' and indexname not in (select conname from pg_constraint)`.execute(db)
    for (const index of indexes) await sql`drop index ${sql.id(index.indexname)}`.execute(db)
    let batch: AccountRow[] = []
    const flush = async () => {
      const columns = COLUMNS.map((_, c) => batch.map((row) => row[c]))
      await sql`insert into accounts (${sql.join(COLUMNS.map((c) => sql.id(c)))})
        select * from unnest(${sql.join(columns.map((values, c) => sql`${values}::${sql.raw(types[c]!)}[]`))})`.execute(db)
      batch = []
    }
    for (const row of accountRows(count)) {
      batch.push(row)
      if (batch.length === 10_000) await flush()
    }
    if (batch.length) await flush()
    for (const index of indexes) await sql.raw(index.indexdef).execute(db)
  } finally {
    await db.destroy()
  }
}
