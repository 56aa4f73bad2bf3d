import type { Kysely } from 'kysely'
import type { Database, Session, TwoFactor, User } from '../../db/schema.ts'
import type { Actor, Client, Origin } from '../../lib/actor.ts'
import type { Portal } from '../../types.ts'
import { hashPassword, verifyAgainstDummy, verifyPassword } from '../../lib/passwords.ts'
import { checkPassword } from '../../lib/password-policy.ts'
import { ADMINISTRATOR } from '../../lib/roles.ts'
import { randomToken, sha256, uuid } from '../../lib/tokens.ts'
import { ValidationError } from '../../lib/errors.ts'
import { audit } from '../audit/service.ts'
import * as repo from './repository.ts'
import { setNewPassword } from './password-change.ts'
import { findTwoFactor } from '../two-factor/repository.ts'
import * as tfa from '../two-factor/service.ts'

// Lockout (documented in README): after LOCK_AFTER consecutive failures the account is
// locked for 1 minute, doubling with each further failure up to LOCK_MAX_MINUTES.
// A successful sign-in after the lock ends, or a password reset, clears the count.
export const LOCK_AFTER = 5
export const LOCK_MAX_MINUTES = 60
export const RESET_TOKEN_MINUTES = 60
export const SETUP_TOKEN_HOURS = 24

export function lockMinutes(consecutiveFailures: number): number {
  if (consecutiveFailures < LOCK_AFTER) return 0
  return Math.min(2 ** (consecutiveFailures - LOCK_AFTER), LOCK_MAX_MINUTES)
}

export const USERNAME_PATTERN = /^[a-z0-9._%+'-]+@([a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,})$/

export function usernameDomain(username: string): string | null {
  return USERNAME_PATTERN.exec(username.toLowerCase())?.[1] ?? null
}

/** A session that still owes its second factor lasts only as long as a sign-in code. */
export const PENDING_2FA_MS = 10 * 60_000

/** A new session row for the user: its id is the hash of the returned token, which the route puts in the cookie. */
async function createSession(db: Kysely<Database>, portal: Pick<Portal, 'config'>, client: Client, user: User, rememberMe: boolean, pending2fa = false): Promise<{ id: string; token: string }> {
  const token = randomToken(32)
  const now = Date.now()
  const id = sha256(token)
  await repo.insertSession(db, {
    id,
    pending_2fa: pending2fa ? 1 : 0,
    user_id: user.id,
    remember_me: rememberMe ? 1 : 0,
    created_at: now,
    last_seen_at: now,
    expires_at: now + (pending2fa ? PENDING_2FA_MS : portal.config.sessionMaxHours * 3_600_000),
    ip: client.ip,
    user_agent: client.userAgent.slice(0, 300),
  })
  return { id, token }
}

/**
 * Checks a password sign-in. Unknown users, wrong passwords, disabled and locked users
 * all get `null` after the same argon2 work; every attempt on a real user is counted.
 * A user with a second factor gets a session that still owes it (`pending`). `token` is the
 * new session's, for the cookie.
 */
export async function signIn(
  portal: Portal,
  client: Client,
  input: { username: string; password: string; rememberMe: boolean },
): Promise<{ user: User; pending: boolean; token: string } | null> {
  const { db } = portal
  const username = input.username.trim().toLowerCase()
  const user = await repo.findUserByUsername(db, username)
  if (!user) {
    await verifyAgainstDummy(input.password)
    await audit(db, client, { action: 'auth.sign_in', outcome: 'failure', actor: null, fields: { username: username.slice(0, 254), reason: 'unknown user' } })
    return null
  }
  const valid = await verifyPassword(user.password_hash, input.password)
  const now = Date.now()
  const locked = user.locked_until !== null && user.locked_until > now
  if (!valid || locked || user.enabled !== 1 || user.password_permitted !== 1) {
    await recordFailedSignIn(db, client, user, { countsTowardLock: !valid, reason: user.enabled !== 1 ? 'disabled' : locked ? 'locked' : !valid ? 'wrong password' : 'password sign-in not permitted' })
    return null
  }
  const tf = await findTwoFactor(db, user.id)
  if (tfa.isConfigured(tf)) {
    const session = await createSession(db, portal, client, user, input.rememberMe, true)
    await audit(db, client, { action: 'auth.password_accepted', actor: user, target: { type: 'user', id: user.uuid, name: user.username }, fields: { second_factor: 'required' } })
    // Past the cap on texts the code step offers the user's other ways instead.
    await tfa.startSignInChallenge(portal, user, tf, session.id).catch((err: unknown) => {
      if (!(err instanceof tfa.TextLimitError)) throw err
    })
    return { user, pending: true, token: session.token }
  }
  return { user, pending: false, token: await completeSignIn(portal, client, user, input.rememberMe, { method: 'password' }) }
}

/** The user is who they say: reset the failure count, record the login, start the session (its token returned). */
async function completeSignIn(portal: Portal, client: Client, user: User, rememberMe: boolean, fields: { method: string }, replacesSessionId?: string): Promise<string> {
  const now = Date.now()
  // One transaction: one commit (one fsync on SQLite) per sign-in.
  return portal.db.transaction().execute(async (trx) => {
    if (replacesSessionId) await repo.deleteSession(trx, replacesSessionId)
    await repo.updateUser(trx, user.id, { failed_login_count: 0, locked_until: null, last_login_at: now, last_login_attempt_at: now })
    const session = await createSession(trx, portal, client, user, rememberMe)
    const notice = endedLockNotice(user, now)
    if (notice) await repo.setSessionFlash(trx, session.id, notice)
    await audit(trx, client, { action: 'auth.sign_in', actor: user, target: { type: 'user', id: user.uuid, name: user.username }, fields: { remember_me: rememberMe, ...fields } })
    return session.token
  })
}

/** A session that passed the password and owes its second factor, with the user's settings. */
export type PendingSignIn = { session: Session; user: User; tf: TwoFactor | undefined }

/**
 * The sign-in code step: a recovery code, a sent code or an authenticator code finishes the
 * sign-in (a new session: `token`, for the cookie). A wrong code counts as a failed sign-in,
 * and MAX_CODE_ATTEMPTS of them end the attempt (`ended`: sign in again).
 */
export async function verifySignInCode(portal: Portal, client: Client, pending: PendingSignIn, input: string): Promise<{ token: string | null; ended: boolean }> {
  const { db } = portal
  const code = input.replace(/\s+/g, '')
  let method: string | null = null
  if (/[a-z-]/i.test(code)) {
    if (await tfa.checkRecoveryCode(db, pending.user.id, code)) method = 'recovery code'
  } else if (await tfa.checkSentCode(db, pending.session.id, code)) {
    method = 'sent code'
  } else if (pending.tf && (await tfa.checkTotp(portal, pending.tf, code))) {
    method = 'authenticator app'
  }
  if (method) return { token: await completeSignIn(portal, client, pending.user, pending.session.remember_me === 1, { method }, pending.session.id), ended: false }
  const attempts = pending.session.code_attempts + 1
  await repo.setCodeAttempts(db, pending.session.id, attempts)
  const user = (await repo.findUserById(db, pending.user.id))!
  await recordFailedSignIn(db, client, user, { countsTowardLock: true, reason: 'wrong verification code' })
  const ended = attempts >= tfa.MAX_CODE_ATTEMPTS
  if (ended) await repo.deleteSession(db, pending.session.id)
  return { token: null, ended }
}

/**
 * Resend Code (text message) or the backup e-mail, voiding the previous code. Throws a
 * ValidationError when the user has no such way, and the two-factor service's limits.
 */
export async function resendSignInCode(portal: Portal, client: Client, pending: PendingSignIn, channel: tfa.CodeChannel): Promise<void> {
  const { tf, user } = pending
  const to = channel === 'sms' ? tf?.sms_phone : tf?.email_enabled ? user.email : null
  if (!to || (channel === 'sms' && !portal.messenger.hasTransport('sms'))) {
    throw new ValidationError({}, channel === 'sms' ? 'Text messages cannot be sent for this account.' : 'No backup e-mail is set up for this account.')
  }
  await tfa.sendCode(portal, { boundTo: pending.session.id, channel, to, userId: user.id, purpose: '2fa_sign_in' })
  await audit(portal.db, client, { action: 'auth.code_resent', actor: user, fields: { channel } })
}

/**
 * While a lock lasts, every sign-in (the right password included) gets the same answer as a
 * wrong password, so that the lock tells a guesser nothing. Once it is over, the next
 * successful sign-in tells the user about it, and so about the failures behind it (the
 * lock is still recorded: only a successful sign-in, an unlock or a reset clears it).
 */
export function endedLockNotice(user: Pick<User, 'locked_until' | 'failed_login_count'>, now: number): string | null {
  if (user.locked_until === null || user.locked_until > now) return null
  const minutes = lockMinutes(user.failed_login_count)
  if (minutes === 0) return null
  return `Your account was locked for ${minutes} ${minutes === 1 ? 'minute' : 'minutes'} after ${user.failed_login_count} failed sign-in attempts. If they were not yours, change your password in My Account.`
}

/**
 * Counts a failed attempt; wrong passwords (and wrong codes) move the progressive lock.
 * `action` names what was attempted when it was not a sign-in (a step-up before a change).
 */
export async function recordFailedSignIn(db: Kysely<Database>, by: Actor | Origin, user: User, opts: { countsTowardLock: boolean; reason: string; action?: string }): Promise<void> {
  const now = Date.now()
  const target = { type: 'user', id: user.uuid, name: user.username }
  await db.transaction().execute(async (trx) => {
    // A locked user's right password does not extend the lock.
    const failures = await repo.countFailedSignIn(trx, user.id, opts.countsTowardLock, now)
    await audit(trx, by, { action: opts.action ?? 'auth.sign_in', outcome: 'failure', actor: user, target, fields: { reason: opts.reason } })
    const minutes = opts.countsTowardLock ? lockMinutes(failures) : 0
    if (minutes > 0) {
      await repo.updateUser(trx, user.id, { locked_until: now + minutes * 60_000 })
      await audit(trx, by, { action: 'auth.lockout', actor: user, target, fields: { minutes, failures } })
    }
  })
}

/** Mails a single-use reset link when the user exists and is enabled; says nothing either way. */
export async function requestPasswordReset(app: Portal, origin: Origin, usernameInput: string): Promise<void> {
  const user = await repo.findUserByUsername(app.db, usernameInput.trim().toLowerCase())
  if (!user || user.enabled !== 1) {
    await audit(app.db, origin, { action: 'auth.password_reset_requested', outcome: 'failure', actor: null, fields: { username: usernameInput.slice(0, 254) } })
    return
  }
  const now = Date.now()
  const token = randomToken(32)
  await repo.voidOneTimeCodes(app.db, 'password_reset', user.id, now)
  await repo.insertOneTimeCode(app.db, {
    id: uuid(),
    purpose: 'password_reset',
    user_id: user.id,
    code_hash: sha256(token),
    created_at: now,
    expires_at: now + RESET_TOKEN_MINUTES * 60_000,
  })
  const link = `${app.config.baseUrl}/reset-password?token=${token}`
  await app.messenger.send({
    kind: 'email',
    to: user.email ?? user.username,
    subject: 'Reset your MSSP Portal password',
    expiresAt: now + RESET_TOKEN_MINUTES * 60_000,
    text: `Hello ${user.name},\n\nSomeone (hopefully you) asked to reset the password of ${user.username} on the MSSP Portal.\nOpen this link within ${RESET_TOKEN_MINUTES} minutes to choose a new password:\n\n${link}\n\nThe link works once. If you did not ask for it, ignore this message: your password stays as it is.\n`,
  })
  await audit(app.db, origin, { action: 'auth.password_reset_requested', actor: null, target: { type: 'user', id: user.uuid, name: user.username } })
}

export async function findValidCode(db: Kysely<Database>, purpose: string, token: string) {
  if (!token || token.length > 100) return undefined
  const code = await repo.findOneTimeCode(db, purpose, sha256(token))
  if (!code || code.used_at !== null || code.expires_at <= Date.now()) return undefined
  return code
}

export class InvalidLinkError extends Error {}

/** Sets a new password from a reset link: unlocks the user, ends all their sessions and tells them. */
export async function resetPassword(portal: Portal, origin: Origin, token: string, password: string, confirm: string): Promise<void> {
  const { db } = portal
  const code = await findValidCode(db, 'password_reset', token)
  if (!code || code.user_id === null) throw new InvalidLinkError()
  const errors = passwordErrors(password, confirm, 'self-service')
  if (errors) throw new ValidationError(errors)
  const passwordHash = await hashPassword(password)
  const user = await repo.findUserById(db, code.user_id)
  if (!user) throw new InvalidLinkError()
  await setNewPassword(portal, origin, user, passwordHash, {
    unlock: true,
    revokeApiKeys: true,
    via: 'reset',
    before: async (trx) => {
      if (!(await repo.consumeOneTimeCode(trx, code.id, Date.now()))) throw new InvalidLinkError()
    },
    audit: { action: 'auth.password_reset', actor: user },
  })
}

export function passwordErrors(password: string, confirm: string, rule: 'self-service' | 'admin-set'): Record<string, string> | null {
  const policy = checkPassword(password, rule)
  if (policy) return { password: policy }
  if (password !== confirm) return { confirm: 'The passwords do not match.' }
  return null
}

export interface NewAdministrator {
  name: string
  username: string
  email: string | null
  password: string
}

/** Validates the first Administrator's details; returns field errors or null. */
export function administratorErrors(input: NewAdministrator & { confirm?: string }): Record<string, string> | null {
  const errors: Record<string, string> = {}
  if (!input.name.trim()) errors.name = 'Enter the full name.'
  else if (input.name.length > 200) errors.name = 'The full name can be at most 200 characters.'
  if (!usernameDomain(input.username) || input.username.length > 254) errors.username = 'A valid username must be in the format name@domain.'
  if (input.email && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(input.email)) errors.email = 'Enter a valid e-mail address.'
  const policy = checkPassword(input.password, 'self-service')
  if (policy) errors.password = policy
  else if (input.confirm !== undefined && input.confirm !== input.password) errors.confirm = 'The passwords do not match.'
  return Object.keys(errors).length ? errors : null
}

/** Creates an Administrator and approves the username's domain, in one transaction. */
export async function createAdministrator(db: Kysely<Database>, input: NewAdministrator, opts: { onlyIfNoUsers?: boolean; setupCodeId?: string } = {}): Promise<User> {
  const errors = administratorErrors(input)
  if (errors) throw new ValidationError(errors)
  const username = input.username.trim().toLowerCase()
  const passwordHash = await hashPassword(input.password)
  return db.transaction().execute(async (trx) => {
    if (opts.onlyIfNoUsers && (await repo.countUsers(trx)) > 0) throw new ValidationError({}, 'The portal already has users.')
    if (opts.setupCodeId && !(await repo.consumeOneTimeCode(trx, opts.setupCodeId, Date.now()))) throw new InvalidLinkError()
    if (await repo.findUserByUsername(trx, username)) throw new ValidationError({ username: 'A user with this username already exists.' })
    const now = Date.now()
    await repo.approveDomain(trx, usernameDomain(username)!, now)
    return repo.insertUser(trx, repo.newUser({ username, name: input.name, email: input.email, passwordHash, role: ADMINISTRATOR, now }))
  })
}

/** On an empty database: a one-time setup link (printed by the caller), valid for a day. */
export async function createSetupLink(app: Pick<Portal, 'db' | 'config'>): Promise<string | null> {
  if ((await repo.countUsers(app.db)) > 0) return null
  const now = Date.now()
  const token = randomToken(32)
  await repo.voidOneTimeCodes(app.db, 'setup', null, now)
  await repo.insertOneTimeCode(app.db, {
    id: uuid(),
    purpose: 'setup',
    user_id: null,
    code_hash: sha256(token),
    created_at: now,
    expires_at: now + SETUP_TOKEN_HOURS * 3_600_000,
  })
  return `${app.config.baseUrl}/setup?token=${token}`
}

export async function completeSetup(db: Kysely<Database>, origin: Origin, token: string, input: NewAdministrator & { confirm: string }): Promise<User> {
  const code = await findValidCode(db, 'setup', token)
  if (!code) throw new InvalidLinkError()
  const errors = administratorErrors(input)
  if (errors) throw new ValidationError(errors)
  const user = await createAdministrator(db, input, { onlyIfNoUsers: true, setupCodeId: code.id })
  await audit(db, origin, { action: 'setup.first_administrator', actor: user, target: { type: 'user', id: user.uuid, name: user.username } })
  return user
}
