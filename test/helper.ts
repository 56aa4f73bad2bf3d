import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import pg from 'pg'
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import type { User } from '../src/db/schema.ts'
import { hashPassword } from '../src/lib/passwords.ts'
import { ADMINISTRATOR } from '../src/lib/roles.ts'
import { hmac, randomToken, uuid } from '../src/lib/tokens.ts'
import { replaceApiKeys } from '../src/areas/api/repository.ts'
import { apiKeyHashKey } from '../src/areas/api/service.ts'
import { approveDomain, insertUser } from '../src/areas/auth/repository.ts'
import { insertAccount, replaceAssignments } from '../src/areas/accounts/repository.ts'
import { PASSWORD } from './support/fixtures.ts'

export * from './support/fixtures.ts'

const TEST_SESSION_KEY = 'a1'.repeat(32)

export type DialectName = 'sqlite' | 'postgres'

/** SQLite always; PostgreSQL too when TEST_DATABASE_URL is set (CI sets it). */
export const dialects: DialectName[] = process.env.TEST_DATABASE_URL ? ['sqlite', 'postgres'] : ['sqlite']

/** What the test helpers need of a tap test (its teardown): the one such type. */
export interface Tap {
  teardown(fn: () => unknown): void
  testdirName?: string
}

export interface TestApp {
  app: FastifyInstance
  dataDir: string
}

/**
 * Builds the app for one test on its own database: a fresh SQLite file in a temporary
 * folder, or a fresh PostgreSQL schema. Torn down with the test.
 */
export async function buildTestApp(t: Tap, dialect: DialectName, env: Record<string, string> = {}): Promise<TestApp> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-test-'))
  let pgSchema: string | undefined
  const databaseUrl = dialect === 'postgres' ? process.env.TEST_DATABASE_URL : undefined
  if (databaseUrl) {
    pgSchema = `t_${randomToken(9).toLowerCase().replace(/[^a-z0-9]/g, '')}`
    const client = new pg.Client({ connectionString: databaseUrl })
    await client.connect()
    await client.query(`create schema ${pgSchema}`)
    await client.end()
  }
  const config = loadConfig({
    NODE_ENV: 'test',
    DATA_DIR: dataDir,
    BASE_URL: 'http://portal.test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl, SESSION_KEY: TEST_SESSION_KEY, SECRETS_KEY: 'b2'.repeat(32) } : {}),
    ...env,
  })
  // Cleanup is registered before building, so a failed build leaves nothing behind.
  let app: FastifyInstance | undefined
  t.teardown(async () => {
    await app?.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
    if (databaseUrl && pgSchema) {
      const client = new pg.Client({ connectionString: databaseUrl })
      await client.connect()
      await client.query(`drop schema ${pgSchema} cascade`)
      await client.end()
    }
  })
  app = await buildApp(config, { pgSchema })
  return { app, dataDir }
}

let counter = 0
/** Creates a user directly in the database (the Users issue adds the real pages). */
export async function createUser(
  app: FastifyInstance,
  overrides: Partial<Omit<User, 'id'>> & { password?: string } = {},
): Promise<User> {
  const { password = PASSWORD, ...rest } = overrides
  const now = Date.now()
  counter += 1
  const username = rest.username ?? `user${counter}-${randomToken(4).toLowerCase().replace(/[^a-z0-9]/g, '')}@example.com`
  await approveDomain(app.db, username.split('@')[1]!, now)
  return insertUser(app.db, {
    uuid: uuid(),
    username,
    name: `Test User ${counter}`,
    email: null,
    password_hash: await hashPassword(password),
    role: ADMINISTRATOR,
    enabled: 1,
    locked_until: null,
    last_login_at: null,
    last_failed_login_at: null,
    last_login_attempt_at: null,
    password_changed_at: now,
    created_at: now,
    updated_at: now,
    ...rest,
  })
}

/**
 * A browser-like client over app.inject: keeps the session cookie and fills in the CSRF
 * token from the last page it fetched, as a form post would.
 */
export class Client {
  cookie = ''
  csrf = ''
  constructor(readonly app: FastifyInstance) {}

  private remember(res: LightMyRequestResponse): LightMyRequestResponse {
    const setCookie = res.headers['set-cookie']
    for (const c of Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []) {
      const [pair] = c.split(';')
      if (/^(__Host-)?mssp_session=/.test(pair!)) this.cookie = /Max-Age=0|Expires=Thu, 01 Jan 1970/i.test(c) ? '' : pair!
    }
    const token = /name="(?:_csrf|csrf-token)" (?:value|content)="([^"]+)"/.exec(res.body)?.[1]
    if (token) this.csrf = token
    return res
  }

  async get(url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    return this.remember(await this.app.inject({ method: 'GET', url, headers: { ...this.headers(), ...headers } }))
  }

  /** Posts a form the way a browser does (urlencoded, with the page's CSRF token). */
  async post(url: string, form: Record<string, string> = {}, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    const body = new URLSearchParams({ _csrf: this.csrf, ...form }).toString()
    return this.remember(
      await this.app.inject({
        method: 'POST',
        url,
        payload: body,
        headers: { ...this.headers(), 'content-type': 'application/x-www-form-urlencoded', ...headers },
      }),
    )
  }

  headers(): Record<string, string> {
    return this.cookie ? { cookie: this.cookie } : {}
  }

  /** Signs in through the Log in page. */
  async signIn(username: string, password = PASSWORD, rememberMe = false): Promise<LightMyRequestResponse> {
    await this.get('/login')
    return this.post('/login', { username, password, ...(rememberMe ? { remember_me: '1' } : {}) })
  }

  /** The X-ApiKeys header of new keys this session makes (PUT /api/session/keys, as My Account does). */
  async apiKeys(): Promise<{ 'x-apikeys': string }> {
    await this.get('/accounts')
    const res = await this.app.inject({ method: 'PUT', url: '/api/session/keys', headers: { ...this.headers(), 'x-csrf-token': this.csrf } })
    if (res.statusCode !== 200) throw new Error(`PUT /api/session/keys: ${res.statusCode} ${res.body.slice(0, 500)}`)
    const { accessKey, secretKey } = res.json() as { accessKey: string; secretKey: string }
    return { 'x-apikeys': `accessKey=${accessKey};secretKey=${secretKey}` }
  }
}

/**
 * From now on until the test ends the process's clock (Date.now) reads `ms` later, for rules
 * that compare stored times or a cookie's age with now, so no test waits for them in real time.
 */
export function advanceClock(t: Tap, ms: number): void {
  clockOffset += ms
  Date.now = () => realNow.call(Date) + clockOffset
  // Undone by amount, not by restoring a saved function: right in whatever order teardowns run.
  t.teardown(() => {
    clockOffset -= ms
    if (clockOffset === 0) Date.now = realNow
  })
}
const realNow = Date.now
let clockOffset = 0

/** The latest message in the outbox for a recipient. */
export async function lastMessageTo(app: FastifyInstance, recipient: string) {
  return app.db.selectFrom('outbox').selectAll().where('recipient', '=', recipient).orderBy('created_at', 'desc').executeTakeFirst()
}

let accountCounter = 0
/** Creates a customer account directly (the accounts area's repository). */
export async function createAccount(app: FastifyInstance, overrides: Partial<Parameters<typeof insertAccount>[1]> = {}) {
  accountCounter += 1
  const now = Date.now()
  return insertAccount(app.db, {
    uuid: uuid(),
    container_name: `Customer ${accountCounter}`,
    custom_name: null,
    site_id: `SITE-${accountCounter}`,
    region: 'US',
    licensed_apps: 'vm',
    licensed_assets: 10,
    licensed_assets_limit: 100,
    license_expiration_date: now + 100 * 86_400_000,
    logo_id: null,
    notes: '',
    lms_customer_id: null,
    sso_username: null,
    domains: '[]',
    instance_url: null,
    contact_email: null,
    created_by: null,
    created_at: now,
    modified_at: now,
    ...overrides,
  })
}

export async function assign(app: FastifyInstance, userId: number, accountIds: number[]): Promise<void> {
  await replaceAssignments(app.db, userId, accountIds, Date.now())
}

/** API keys for a user, written directly (no sign-in): the X-ApiKeys value, as a header, and its parts. */
export async function apiKeysFor(app: FastifyInstance, user: User, db = app.db): Promise<{ header: string; headers: { 'x-apikeys': string }; accessKey: string; secretKey: string }> {
  // Hex, as the portal makes them.
  const accessKey = crypto.randomBytes(32).toString('hex')
  const secretKey = crypto.randomBytes(32).toString('hex')
  await replaceApiKeys(db, { user_id: user.id, access_key: accessKey, secret_hash: hmac(apiKeyHashKey(app), secretKey), created_at: Date.now() })
  const header = `accessKey=${accessKey}; secretKey=${secretKey}`
  return { header, headers: { 'x-apikeys': header }, accessKey, secretKey }
}
