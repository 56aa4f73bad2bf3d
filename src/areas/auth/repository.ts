import type { Kysely } from 'kysely'
import type { Database, NewUser, Session, User, UserUpdate } from '../../db/schema.ts'
import { uuid } from '../../lib/tokens.ts'

type Db = Kysely<Database>

export function findUserByUsername(db: Db, username: string): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('username', '=', username.toLowerCase()).executeTakeFirst()
}

export function findUserById(db: Db, id: number): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function countUsers(db: Db): Promise<number> {
  const row = await db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return Number(row.n)
}

/** The row of a new, enabled user who has never signed in (usernames and e-mails lower-cased). */
export function newUser(v: { username: string; name: string; email: string | null; passwordHash: string; role: number; now: number }): NewUser {
  return {
    uuid: uuid(),
    username: v.username.trim().toLowerCase(),
    name: v.name.trim(),
    email: v.email?.trim().toLowerCase() || null,
    password_hash: v.passwordHash,
    role: v.role,
    enabled: 1,
    locked_until: null,
    last_login_at: null,
    last_failed_login_at: null,
    last_login_attempt_at: null,
    password_changed_at: v.now,
    created_at: v.now,
    updated_at: v.now,
  }
}

export async function insertUser(db: Db, user: NewUser): Promise<User> {
  return db.insertInto('users').values(user).returningAll().executeTakeFirstOrThrow()
}

export async function updateUser(db: Db, id: number, values: UserUpdate): Promise<void> {
  await db.updateTable('users').set(values).where('id', '=', id).execute()
}

/** Counts a failed attempt (in the consecutive count too, when `consecutive`); the consecutive count after it. */
export async function countFailedSignIn(db: Db, userId: number, consecutive: boolean, now: number): Promise<number> {
  const row = await db
    .updateTable('users')
    .set((eb) => ({
      failed_login_total: eb('failed_login_total', '+', 1),
      failed_login_count: consecutive ? eb('failed_login_count', '+', 1) : eb.ref('failed_login_count'),
      last_failed_login_at: now,
      last_login_attempt_at: now,
    }))
    .where('id', '=', userId)
    .returning(['failed_login_count'])
    .executeTakeFirstOrThrow()
  return row.failed_login_count
}

export async function approveDomain(db: Db, domain: string, now: number): Promise<void> {
  await db
    .insertInto('approved_domains')
    .values({ domain: domain.toLowerCase(), created_at: now })
    .onConflict((oc) => oc.column('domain').doNothing())
    .execute()
}

export async function isApprovedDomain(db: Db, domain: string): Promise<boolean> {
  const row = await db.selectFrom('approved_domains').select('domain').where('domain', '=', domain.toLowerCase()).executeTakeFirst()
  return Boolean(row)
}

// Sessions

export async function insertSession(db: Db, session: Omit<Session, 'flash' | 'code_attempts' | 'assist_user_id' | 'assist_started_at'>): Promise<void> {
  await db.insertInto('sessions').values({ ...session, flash: null, code_attempts: 0, assist_user_id: null, assist_started_at: null }).execute()
}

export async function setAssist(db: Db, sessionId: string, assistUserId: number | null, now: number): Promise<void> {
  await db.updateTable('sessions').set({ assist_user_id: assistUserId, assist_started_at: assistUserId ? now : null }).where('id', '=', sessionId).execute()
}

/** Ends the session's assist; false when it had already ended (another request ended it first). */
export async function endAssist(db: Db, sessionId: string): Promise<boolean> {
  const res = await db.updateTable('sessions').set({ assist_user_id: null, assist_started_at: null }).where('id', '=', sessionId).where('assist_user_id', 'is not', null).executeTakeFirst()
  return Number(res.numUpdatedRows) === 1
}

export async function userHasTwoFactor(db: Db, userId: number): Promise<boolean> {
  const row = await db.selectFrom('two_factor').select(['sms_phone', 'totp_secret']).where('user_id', '=', userId).executeTakeFirst()
  return Boolean(row?.sms_phone || row?.totp_secret)
}

const SESSION_COLUMNS = ['id', 'user_id', 'remember_me', 'created_at', 'last_seen_at', 'expires_at', 'ip', 'user_agent', 'flash', 'pending_2fa', 'code_attempts', 'assist_user_id', 'assist_started_at'] as const

/** The session, its user and whether that user has a second factor, in one query (every request runs it). */
export async function findSessionWithUser(db: Db, id: string): Promise<{ session: Session; user: User; has2fa: boolean } | undefined> {
  const row = await db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .leftJoin('two_factor', 'two_factor.user_id', 'sessions.user_id')
    .selectAll('users')
    .select(SESSION_COLUMNS.map((c) => `sessions.${c} as session_${c}` as const))
    .select(['two_factor.sms_phone as tf_sms', 'two_factor.totp_secret as tf_totp'])
    .where('sessions.id', '=', id)
    .executeTakeFirst()
  if (!row) return undefined
  const session = {} as Record<string, unknown>
  const user = {} as Record<string, unknown>
  for (const [k, v] of Object.entries(row)) {
    if (k.startsWith('session_')) session[k.slice(8)] = v
    else if (!k.startsWith('tf_')) user[k] = v
  }
  return { session: session as unknown as Session, user: user as unknown as User, has2fa: Boolean(row.tf_sms || row.tf_totp) }
}

export async function deleteSession(db: Db, id: string): Promise<void> {
  await db.deleteFrom('sessions').where('id', '=', id).execute()
}

export async function deleteUserSessions(db: Db, userId: number, exceptId?: string): Promise<void> {
  let q = db.deleteFrom('sessions').where('user_id', '=', userId)
  if (exceptId) q = q.where('id', '!=', exceptId)
  await q.execute()
}

export async function touchSession(db: Db, id: string, now: number): Promise<void> {
  await db.updateTable('sessions').set({ last_seen_at: now }).where('id', '=', id).execute()
}

export async function setCodeAttempts(db: Db, id: string, attempts: number): Promise<void> {
  await db.updateTable('sessions').set({ code_attempts: attempts }).where('id', '=', id).execute()
}

export async function setSessionFlash(db: Db, id: string, flash: string | null): Promise<void> {
  await db.updateTable('sessions').set({ flash }).where('id', '=', id).execute()
}

// One-time codes (reset links, setup links; later 2FA codes)

export async function insertOneTimeCode(
  db: Db,
  row: { id: string; purpose: string; user_id: number | null; code_hash: string; created_at: number; expires_at: number; bound_to?: string | null },
): Promise<void> {
  await db.insertInto('one_time_codes').values({ bound_to: null, ...row }).execute()
}

export function findOneTimeCode(db: Db, purpose: string, codeHash: string) {
  return db
    .selectFrom('one_time_codes')
    .selectAll()
    .where('purpose', '=', purpose)
    .where('code_hash', '=', codeHash)
    .executeTakeFirst()
}

/** Marks a code used; false when another request used it first (single use under races). */
export async function consumeOneTimeCode(db: Db, id: string, now: number): Promise<boolean> {
  const res = await db
    .updateTable('one_time_codes')
    .set({ used_at: now })
    .where('id', '=', id)
    .where('used_at', 'is', null)
    .executeTakeFirst()
  return Number(res.numUpdatedRows) === 1
}

export async function voidOneTimeCodes(db: Db, purpose: string, userId: number | null, now: number): Promise<void> {
  let q = db.updateTable('one_time_codes').set({ used_at: now }).where('purpose', '=', purpose).where('used_at', 'is', null)
  q = userId === null ? q.where('user_id', 'is', null) : q.where('user_id', '=', userId)
  await q.execute()
}
