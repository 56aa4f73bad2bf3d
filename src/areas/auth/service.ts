import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database, User } from '../../db/schema.ts'
import { hashPassword, verifyAgainstDummy, verifyPassword } from '../../lib/passwords.ts'
import { checkPassword } from '../../lib/password-policy.ts'
import { ADMINISTRATOR } from '../../lib/roles.ts'
import { randomToken, sha256, uuid } from '../../lib/tokens.ts'
import { ValidationError } from '../../lib/errors.ts'
import { audit } from '../audit/service.ts'
import { startSession } from '../../plugins/session.ts'
import * as repo from './repository.ts'
import { setNewPassword } from './password-change.ts'
import { findTwoFactor } from '../two-factor/repository.ts'
import { TextLimitError, isConfigured, startSignInChallenge } from '../two-factor/service.ts'

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

/**
 * Checks a password sign-in. Unknown users, wrong passwords, disabled and locked users
 * all get `null` after the same argon2 work; every attempt on a real user is counted.
 * A user with a second factor gets a session that still owes it (`pending`).
 */
export async function signIn(
  request: FastifyRequest,
  input: { username: string; password: string; rememberMe: boolean },
): Promise<{ user: User; pending: boolean } | null> {
  const { db } = request.server
  const username = input.username.trim().toLowerCase()
  const user = await repo.findUserByUsername(db, username)
  if (!user) {
    await verifyAgainstDummy(input.password)
    await audit(db, request, { action: 'auth.sign_in', outcome: 'failure', actor: null, fields: { username: username.slice(0, 254), reason: 'unknown user' } })
    return null
  }
  const valid = await verifyPassword(user.password_hash, input.password)
  const now = Date.now()
  const locked = user.locked_until !== null && user.locked_until > now
  if (!valid || locked || user.enabled !== 1 || user.password_permitted !== 1) {
    await recordFailedSignIn(request, user, { countsTowardLock: !valid, reason: user.enabled !== 1 ? 'disabled' : locked ? 'locked' : !valid ? 'wrong password' : 'password sign-in not permitted' })
    return null
  }
  const tf = await findTwoFactor(db, user.id)
  if (isConfigured(tf)) {
    const sessionId = await startSession(request, user, input.rememberMe, db, { pending2fa: true })
    await audit(db, request, { action: 'auth.password_accepted', actor: user, target: { type: 'user', id: user.uuid, name: user.username }, fields: { second_factor: 'required' } })
    // Past the cap on texts the code step offers the user's other ways instead.
    await startSignInChallenge(request, user, tf, sessionId).catch((err: unknown) => {
      if (!(err instanceof TextLimitError)) throw err
    })
    return { user, pending: true }
  }
  await completeSignIn(request, user, input.rememberMe, { method: 'password' })
  return { user, pending: false }
}

/** The user is who they say: reset the failure count, record the login, start the session. */
export async function completeSignIn(request: FastifyRequest, user: User, rememberMe: boolean, fields: { method: string }, replacesSessionId?: string): Promise<void> {
  const now = Date.now()
  // One transaction: one commit (one fsync on SQLite) per sign-in.
  await request.server.db.transaction().execute(async (trx) => {
    if (replacesSessionId) await repo.deleteSession(trx, replacesSessionId)
    await repo.updateUser(trx, user.id, { failed_login_count: 0, locked_until: null, last_login_at: now, last_login_attempt_at: now })
    const sessionId = await startSession(request, user, rememberMe, trx)
    const notice = endedLockNotice(user, now)
    if (notice) await repo.setSessionFlash(trx, sessionId, notice)
    await audit(trx, request, { action: 'auth.sign_in', actor: user, target: { type: 'user', id: user.uuid, name: user.username }, fields: { remember_me: rememberMe, ...fields } })
  })
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
export async function recordFailedSignIn(request: FastifyRequest, user: User, opts: { countsTowardLock: boolean; reason: string; action?: string }): Promise<void> {
  const now = Date.now()
  const target = { type: 'user', id: user.uuid, name: user.username }
  await request.server.db.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('users')
      .set((eb) => ({
        failed_login_total: eb('failed_login_total', '+', 1),
        // A locked user's right password does not extend the lock.
        failed_login_count: opts.countsTowardLock ? eb('failed_login_count', '+', 1) : eb.ref('failed_login_count'),
        last_failed_login_at: now,
        last_login_attempt_at: now,
      }))
      .where('id', '=', user.id)
      .returning(['failed_login_count'])
      .executeTakeFirstOrThrow()
    await audit(trx, request, { action: opts.action ?? 'auth.sign_in', outcome: 'failure', actor: user, target, fields: { reason: opts.reason } })
    const minutes = opts.countsTowardLock ? lockMinutes(updated.failed_login_count) : 0
    if (minutes > 0) {
      await repo.updateUser(trx, user.id, { locked_until: now + minutes * 60_000 })
      await audit(trx, request, { action: 'auth.lockout', actor: user, target, fields: { minutes, failures: updated.failed_login_count } })
    }
  })
}

/** Mails a single-use reset link when the user exists and is enabled; says nothing either way. */
export async function requestPasswordReset(request: FastifyRequest, usernameInput: string): Promise<void> {
  const app = request.server
  const user = await repo.findUserByUsername(app.db, usernameInput.trim().toLowerCase())
  if (!user || user.enabled !== 1) {
    await audit(app.db, request, { action: 'auth.password_reset_requested', outcome: 'failure', actor: null, fields: { username: usernameInput.slice(0, 254) } })
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
  await audit(app.db, request, { action: 'auth.password_reset_requested', actor: null, target: { type: 'user', id: user.uuid, name: user.username } })
}

export async function findValidCode(db: Kysely<Database>, purpose: string, token: string) {
  if (!token || token.length > 100) return undefined
  const code = await repo.findOneTimeCode(db, purpose, sha256(token))
  if (!code || code.used_at !== null || code.expires_at <= Date.now()) return undefined
  return code
}

export class InvalidLinkError extends Error {}

/** Sets a new password from a reset link: unlocks the user, ends all their sessions and tells them. */
export async function resetPassword(request: FastifyRequest, token: string, password: string, confirm: string): Promise<void> {
  const { db } = request.server
  const code = await findValidCode(db, 'password_reset', token)
  if (!code || code.user_id === null) throw new InvalidLinkError()
  const errors = passwordErrors(password, confirm, 'self-service')
  if (errors) throw new ValidationError(errors)
  const passwordHash = await hashPassword(password)
  const user = await repo.findUserById(db, code.user_id)
  if (!user) throw new InvalidLinkError()
  await setNewPassword(request, user, passwordHash, {
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
export async function createSetupLink(app: FastifyInstance): Promise<string | null> {
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

export async function completeSetup(request: FastifyRequest, token: string, input: NewAdministrator & { confirm: string }): Promise<User> {
  const { db } = request.server
  const code = await findValidCode(db, 'setup', token)
  if (!code) throw new InvalidLinkError()
  const errors = administratorErrors(input)
  if (errors) throw new ValidationError(errors)
  const user = await createAdministrator(db, input, { onlyIfNoUsers: true, setupCodeId: code.id })
  await audit(db, request, { action: 'setup.first_administrator', actor: user, target: { type: 'user', id: user.uuid, name: user.username } })
  return user
}
