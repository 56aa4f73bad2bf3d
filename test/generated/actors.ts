import crypto from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import { PNG } from 'pngjs'
import type { Account, Database, User } from '../../src/db/schema.ts'
import { ADMINISTRATOR, ROLES } from '../../src/lib/roles.ts'
import { hmac, randomToken, sha256, uuid } from '../../src/lib/tokens.ts'
import { approveDomain, insertSession, insertUser, newUser, setAssist } from '../../src/areas/auth/repository.ts'
import { insertAccount, replaceAssignments } from '../../src/areas/accounts/repository.ts'
import { insertLogo } from '../../src/areas/logos/repository.ts'
import { apiKeysFor } from '../helper.ts'

// The callers of the generated suites, seeded straight through the repositories (no sign-in,
// no password hashing per user: one hash is computed once and shared).

export const DOMAIN = 'matrix.test'

export type ActorKind =
  | 'signed-out' | 'signed-out-htmx' | 'bad-key' | 'pending-2fa' | 'pending-2fa-htmx'
  | 'session' | 'key' | 'assisting' | 'impersonating-key' | 'impersonate-on-cookie'

/** A caller: the headers it sends and who it acts as. */
export interface Actor {
  name: string
  kind: ActorKind
  /** The role the portal should apply (the assisted / impersonated user's for those). */
  role: number | null
  /** The user the requests act as (for "own" path parameters); null when signed out. */
  self: User | null
  /** Cookie or X-ApiKeys (and X-Impersonate), sent on every request. */
  headers: Record<string, string>
  /** The CSRF token of the browser session (signed out too), if it has one. */
  csrf?: string
  /** The actor's own saved search on the Accounts page. */
  savedSearch?: string
  /** Sends X-ApiKeys. */
  viaKey: boolean
}

export interface World {
  actors: Actor[]
  /** A Basic user that Administrator routes act on (edit, disable, delete, keys...). */
  target: User
  /** An enabled Administrator no actor is: the successor of a deleted user. */
  successor: User
  /** Assigned to every non-administrator actor, with logoA. */
  accountA: Account
  /** Assigned to no one, with logoB. */
  accountB: Account
  logoA: { id: number; uuid: string }
  logoB: { id: number; uuid: string }
}

let png: Buffer | undefined
/** A small valid PNG logo. */
export function tinyPng(): Buffer {
  if (!png) {
    const image = new PNG({ width: 4, height: 4 })
    image.data.fill(200)
    png = PNG.sync.write(image)
  }
  return png
}

/** A session cookie the portal decrypts to this data (as secure-session sealed it). */
export function cookieFor(app: FastifyInstance, data: Record<string, string>): string {
  return `mssp_session=${encodeURIComponent(app.encodeSecureSession(app.createSecureSession(data)))}`
}

let n = 0
export async function seedWorld(app: FastifyInstance, passwordHash: string): Promise<World> {
  return app.db.transaction().execute((trx) => seed(app, trx, passwordHash))
}

async function seed(app: FastifyInstance, db: Kysely<Database>, passwordHash: string): Promise<World> {
  const now = Date.now()
  n += 1
  const w = n
  await approveDomain(db, DOMAIN, now)
  const user = async (label: string, role: number) =>
    insertUser(db, newUser({ username: `${label}-${w}@${DOMAIN}`, name: `Matrix ${label} ${w}`, email: `${label}-${w}@${DOMAIN}`, passwordHash, role, now }))
  const logo = async (name: string) => insertLogo(db, { uuid: uuid(), name: `${name} ${w}`, filename: 'logo.png', png: tinyPng(), width: 4, height: 4, created_by: null, created_at: now, updated_at: now })
  const logoA = await logo('Logo A')
  const logoB = await logo('Logo B')
  const account = (name: string, logoId: number) =>
    insertAccount(db, {
      uuid: uuid(), container_name: `${name} ${w}`, custom_name: null, site_id: `SITE-${name}-${w}`, region: `R${w}`,
      licensed_apps: 'vm', licensed_assets: 10, licensed_assets_limit: 100, license_expiration_date: now + 100 * 86_400_000,
      logo_id: logoId, notes: '', lms_customer_id: null, sso_username: null, domains: '[]', instance_url: null,
      contact_email: null, created_by: null, created_at: now, modified_at: now,
    })
  const accountA = await account('Customer A', logoA.id)
  const accountB = await account('Customer B', logoB.id)

  const session = (u: User, opts: { pending?: boolean; assist?: User } = {}) => createSession(app, db, u, opts)
  const key = (u: User) => createKey(app, db, u)
  const saved = async (u: User) => {
    const id = uuid()
    await db.insertInto('saved_searches').values({ uuid: id, user_id: u.id, name: `Saved ${w}`, query: 'q=Customer', created_at: now }).execute()
    return id
  }
  const assignA = (u: User) => (u.role === ADMINISTRATOR ? Promise.resolve() : replaceAssignments(db, u.id, [accountA.id], now))

  const actors: Actor[] = []
  const anon = randomToken(16)
  const anonCsrf = hmac(app.keys.session, `csrf-anon:${anon}`)
  const anonCookie = cookieFor(app, { anon })
  actors.push({ name: 'signed out', kind: 'signed-out', role: null, self: null, headers: { cookie: anonCookie }, csrf: anonCsrf, viaKey: false })
  actors.push({ name: 'signed out (htmx)', kind: 'signed-out-htmx', role: null, self: null, headers: { cookie: anonCookie, 'hx-request': 'true' }, csrf: anonCsrf, viaKey: false })
  // Well-formed keys that belong to no one (a fresh pair for each request: see badKeyHeader).
  actors.push({ name: 'bad API key', kind: 'bad-key', role: null, self: null, headers: {}, viaKey: true })

  const pendingUser = await user('pending', ADMINISTRATOR)
  const pending = await session(pendingUser, { pending: true })
  actors.push({ name: 'half signed in (2FA pending)', kind: 'pending-2fa', role: null, self: pendingUser, headers: { cookie: pending.cookie }, csrf: pending.csrf, viaKey: false })
  const pendingHtmx = await session(pendingUser, { pending: true })
  actors.push({ name: 'half signed in (2FA pending, htmx)', kind: 'pending-2fa-htmx', role: null, self: pendingUser, headers: { cookie: pendingHtmx.cookie, 'hx-request': 'true' }, csrf: pendingHtmx.csrf, viaKey: false })

  for (const role of ROLES) {
    const bySession = await user(`${role.key}-session`, role.level)
    await assignA(bySession)
    const s = await session(bySession)
    actors.push({ name: `${role.label} (session)`, kind: 'session', role: role.level, self: bySession, headers: { cookie: s.cookie }, csrf: s.csrf, savedSearch: await saved(bySession), viaKey: false })
    const byKey = await user(`${role.key}-key`, role.level)
    await assignA(byKey)
    actors.push({ name: `${role.label} (API key)`, kind: 'key', role: role.level, self: byKey, headers: { 'x-apikeys': await key(byKey) }, savedSearch: await saved(byKey), viaKey: true })
  }

  // An Administrator assisting a Basic user (the browser's way).
  const assistant = await user('assistant', ADMINISTRATOR)
  const assisted = await user('assisted', ROLES[0].level)
  await assignA(assisted)
  const a = await session(assistant, { assist: assisted })
  actors.push({ name: 'Administrator assisting a Basic user', kind: 'assisting', role: assisted.role, self: assisted, headers: { cookie: a.cookie }, csrf: a.csrf, savedSearch: await saved(assisted), viaKey: false })

  // X-Impersonate with an Administrator's keys (the API's way).
  const impersonator = await user('impersonator', ADMINISTRATOR)
  const impersonated = await user('impersonated', ROLES[0].level)
  await assignA(impersonated)
  actors.push({ name: 'Administrator key impersonating a Basic user', kind: 'impersonating-key', role: impersonated.role, self: impersonated, headers: { 'x-apikeys': await key(impersonator), 'x-impersonate': `username=${impersonated.username}` }, savedSearch: await saved(impersonated), viaKey: true })

  // X-Impersonate on an Administrator's session cookie: never honoured (issue 15 item 1).
  const cookieAdmin = await user('cookie-admin', ADMINISTRATOR)
  const c = await session(cookieAdmin)
  actors.push({ name: 'Administrator session with X-Impersonate', kind: 'impersonate-on-cookie', role: ADMINISTRATOR, self: cookieAdmin, headers: { cookie: c.cookie, 'x-impersonate': `username=${impersonated.username}` }, csrf: c.csrf, savedSearch: await saved(cookieAdmin), viaKey: false })

  const target = await user('target', ROLES[0].level)
  await assignA(target)
  const successor = await user('successor', ADMINISTRATOR)
  return { actors, target, successor, accountA, accountB, logoA, logoB }
}

/** A new browser session for the user: its cookie and CSRF token. */
export async function createSession(app: FastifyInstance, db: Kysely<Database>, u: User, opts: { pending?: boolean; assist?: User } = {}) {
  const now = Date.now()
  const token = randomToken(32)
  const id = sha256(token)
  await insertSession(db, { id, pending_2fa: opts.pending ? 1 : 0, user_id: u.id, remember_me: 0, created_at: now, last_seen_at: now, expires_at: now + 3_600_000, ip: null, user_agent: null })
  if (opts.assist) await setAssist(db, id, opts.assist.id, now)
  return { cookie: cookieFor(app, { sid: token }), csrf: hmac(app.keys.session, `csrf:${token}`) }
}

/** New API keys for the user (replacing theirs): the X-ApiKeys header. */
export async function createKey(app: FastifyInstance, db: Kysely<Database>, u: User): Promise<string> {
  return (await apiKeysFor(app, u, db)).header
}

/** Well-formed X-ApiKeys that match no user. */
export function badKeyHeader(): string {
  return `accessKey=${crypto.randomBytes(32).toString('hex')};secretKey=${crypto.randomBytes(32).toString('hex')}`
}

/** The user an impersonation actor names (for checking that it was not honoured). */
export function impersonatedUsername(actor: Actor): string | null {
  return /username=(\S+)/.exec(actor.headers['x-impersonate'] ?? '')?.[1] ?? null
}
