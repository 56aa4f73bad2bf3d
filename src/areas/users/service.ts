import type { Kysely } from 'kysely'
import { z } from 'zod'
import type { Database, User } from '../../db/schema.ts'
import type { Actor } from '../../lib/actor.ts'
import type { Portal } from '../../types.ts'
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../../lib/errors.ts'
import { hashPassword } from '../../lib/passwords.ts'
import { checkPassword } from '../../lib/password-policy.ts'
import { ADMINISTRATOR, isRole, roleLabel } from '../../lib/roles.ts'
import { rowId } from '../../lib/row-id.ts'
import { deleteUserSessions, findUserById, findUserByUsername, insertUser, newUser, isApprovedDomain, setAssist, updateUser } from '../auth/repository.ts'
import { usernameDomain } from '../auth/service.ts'
import { distinctInstanceUrls, findVisibleAccountIds, replaceAssignments } from '../accounts/repository.ts'
import { instanceBase, notifyUserTransfer } from '../instances/service.ts'
import { revokeApiKeys } from '../api/repository.ts'
import { generateApiKeys } from '../api/service.ts'
import { ASSISTING_MESSAGE } from '../my-account/service.ts'
import { deleteTwoFactor } from '../two-factor/repository.ts'
import { changeTwoFactor } from '../two-factor/service.ts'
import { sendPasswordNotice, writeNewPassword } from '../auth/password-change.ts'
import { audit } from '../audit/service.ts'
import { changePassword } from '../my-account/service.ts'
import * as repo from './repository.ts'

// The rules for portal users (Administrator only): create, edit, assignments, disable,
// enable, unlock, reset 2FA, delete with transfer, and assist.

export interface UserInput {
  name: string
  username: string
  email: string
  password: string
  confirm: string
  role: string
  accounts: string[]
}

type Db = Kysely<Database>
/** The portal's logger, for what fails after a change committed. */
type Log = { warn(obj: object, msg: string): void }

const target = (u: Pick<User, 'uuid' | 'username'>) => ({ type: 'user', id: u.uuid, name: u.username })

/** The user a path names by its integer id (pyTenable) or its uuid; anything else names no one (404). */
export async function requireUser(db: Db, idOrUuid: string): Promise<User> {
  const id = rowId(idOrUuid)
  const user = id !== null ? await findUserById(db, id) : z.uuid().safeParse(idOrUuid).success ? await repo.findUserByUuid(db, idOrUuid.toLowerCase()) : undefined
  if (!user) throw new NotFoundError('This user does not exist.')
  return user
}

// --- The portal keeps an Administrator ---

export const LAST_ADMINISTRATOR = 'This is the last enabled Administrator: the portal needs at least one.'
export const LAST_PASSWORD_ADMINISTRATOR = 'This is the last enabled Administrator who can sign in with a password: the portal needs at least one.'

/** A change refused because it would leave the portal without an (enabled, password) Administrator. */
export class LastAdministratorError extends ConflictError {}

/**
 * Runs a change to users in one write transaction under the portal's rule: at least one
 * enabled Administrator, and one of them able to sign in with a password. This is the one
 * place the rule is checked: after the change, before it commits, while every other change
 * that could take an Administrator away waits (repo.lockAdministrators). So two
 * Administrators demoting or disabling each other at once cannot both pass: the second sees
 * the first committed and is rolled back. Only a change that makes the count fall to none is
 * refused. Slow work (hashing a password) belongs before this, never inside.
 */
async function underAdministratorRule<T>({ db, dialect }: Pick<Portal, 'db' | 'dialect'>, change: (trx: Db) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await repo.lockAdministrators(trx, dialect)
    const before = await repo.countAdministrators(trx)
    const result = await change(trx)
    const after = await repo.countAdministrators(trx)
    if (before.enabled > 0 && after.enabled === 0) throw new LastAdministratorError(LAST_ADMINISTRATOR)
    if (before.withPassword > 0 && after.withPassword === 0) throw new LastAdministratorError(LAST_PASSWORD_ADMINISTRATOR)
    return result
  })
}

/** The last enabled Administrator (the API's `undeletable`): for display; the rule is underAdministratorRule. */
export async function isLastEnabledAdministrator(db: Db, user: User): Promise<boolean> {
  return user.role === ADMINISTRATOR && user.enabled === 1 && (await repo.countAdministrators(db)).enabled === 1
}

// --- Whose credentials the Users pages and API may change ---

export const OWN_PASSWORD = 'Change your own password in My Account: it asks for your current password.'
export const OWN_TWO_FACTOR = 'Manage your own two-factor authentication in My Account.'
export const ASSISTED_ACCESS = 'While assisting a user you cannot disable them or change their authorizations. Stop assisting first.'

/** What the Users pages and API may change about how a user signs in. */
type Credential = 'password' | 'two-factor' | 'api-keys' | 'authorizations' | 'disable'

/**
 * Why this caller may not change this user's password, second factors, API keys,
 * authorizations or enabled state here, or null when they may. While assisting (in the
 * browser, or X-Impersonate), the assisted user's credentials and access stay theirs (as on My
 * Account and the API's /session): the Administrator acting as them cannot change them nor
 * disable them. One's own password and second factors change only in My Account (or PUT
 * /session/chpasswd), which ask for the current password; one's own API keys may be generated
 * here as there.
 */
export function credentialsRefusal(actor: Actor, user: User, credential: Credential): string | null {
  if (actor.assistedBy && user.id === actor.user.id) return credential === 'authorizations' || credential === 'disable' ? ASSISTED_ACCESS : ASSISTING_MESSAGE
  if (!isYourself(actor, user)) return null
  return credential === 'password' ? OWN_PASSWORD : credential === 'two-factor' ? OWN_TWO_FACTOR : null
}

/**
 * Whether the user is the person acting: the Administrator themselves while they assist
 * someone. No one disables themselves or turns off their own password sign-in.
 */
export function isYourself(actor: Actor, user: Pick<User, 'id'>): boolean {
  return user.id === (actor.assistedBy ?? actor.user).id
}

function refuseCredentials(actor: Actor, user: User, credential: Exclude<Credential, 'password'>): void {
  const refusal = credentialsRefusal(actor, user, credential)
  if (refusal) throw new ForbiddenError(refusal)
}

async function validate(db: Db, actor: Actor, input: UserInput, existing: User | null): Promise<{ errors: Record<string, string>; role: number; accountIds: number[] }> {
  const errors: Record<string, string> = {}
  const name = input.name.trim()
  if (!name) errors.name = 'Enter the full name.'
  else if (name.length > 200) errors.name = 'The full name can be at most 200 characters.'
  const username = input.username.trim().toLowerCase()
  if (!existing || username !== existing.username) {
    const domain = usernameDomain(username)
    if (!domain || username.length > 254) errors.username = 'A valid username must be in the format name@domain.'
    else if (!(await isApprovedDomain(db, domain))) errors.username = `The domain ${domain} is not approved for this portal. An Administrator can approve it under Settings.`
    else if (await findUserByUsername(db, username)) errors.username = 'A user with this username already exists.'
  }
  const email = input.email.trim()
  if (email && !z.email().safeParse(email).success) errors.email = 'Enter a valid e-mail address.'
  const passwordRefusal = existing && input.password ? credentialsRefusal(actor, existing, 'password') : null
  if (passwordRefusal) errors.password = passwordRefusal
  else if (!existing || input.password) {
    const policy = checkPassword(input.password, 'admin-set')
    if (policy) errors.password = policy
    else if (input.password !== input.confirm) errors.confirm = 'The passwords do not match.'
  }
  const role = Number(input.role)
  if (!isRole(role)) errors.role = 'Select a role.'
  let accountIds: number[] = []
  if (role !== ADMINISTRATOR && input.accounts.length) {
    const found = await findVisibleAccountIds(db, actor.user, [...new Set(input.accounts)])
    if (found.length !== new Set(input.accounts).size) errors.accounts = 'One or more of the selected accounts no longer exist.'
    accountIds = found.map((f) => f.id)
  }
  return { errors, role, accountIds }
}

export async function createUser(db: Db, actor: Actor, input: UserInput): Promise<User> {
  const { errors, role, accountIds } = await validate(db, actor, input, null)
  if (Object.keys(errors).length) throw new ValidationError(errors)
  const passwordHash = await hashPassword(input.password)
  const now = Date.now()
  return db.transaction().execute(async (trx) => {
    const user = await insertUser(trx, newUser({ username: input.username, name: input.name, email: input.email, passwordHash, role, now }))
    if (accountIds.length) await replaceAssignments(trx, user.id, accountIds, now)
    await audit(trx, actor, { action: 'user.create', target: target(user), fields: { role: roleLabel(role), accounts: accountIds.length } })
    return user
  })
}

/** An Edit User form checked and its password hashed, ready to write. */
interface Edit {
  user: User
  name: string
  email: string | null
  role: number
  accountIds: number[]
  passwordHash: string | null
}

async function prepareEdit(db: Db, actor: Actor, user: User, input: UserInput): Promise<Edit> {
  const { errors, role, accountIds } = await validate(db, actor, { ...input, username: user.username }, user)
  if (Object.keys(errors).length) throw new ValidationError(errors)
  const passwordHash = input.password ? await hashPassword(input.password) : null
  return { user, name: input.name.trim(), email: input.email.trim() || null, role, accountIds, passwordHash }
}

async function writeEdit(trx: Db, actor: Actor, { user, name, email, role, accountIds, passwordHash }: Edit): Promise<void> {
  const now = Date.now()
  await updateUser(trx, user.id, {
    name,
    email,
    role,
    updated_at: now,
  })
  // Only non-administrators have assignments: becoming an Administrator clears them.
  await replaceAssignments(trx, user.id, role === ADMINISTRATOR ? [] : accountIds, now)
  // A password set by an Administrator ends the user's sessions, voids their reset links and
  // ends a lockout (recorded in user.update below; editUser mails the notice).
  if (passwordHash) await writeNewPassword(trx, actor, user, passwordHash, ADMIN_SET_PASSWORD)
  await audit(trx, actor, {
    action: 'user.update',
    target: target(user),
    fields: { role: roleLabel(role), role_changed: role !== user.role, password_changed: Boolean(passwordHash), accounts: role === ADMINISTRATOR ? 0 : accountIds.length },
  })
}

/** Saves the Edit User form; role and assignment changes apply on the user's next request. */
export async function editUser(portal: Portal, actor: Actor, user: User, input: UserInput): Promise<void> {
  const edit = await prepareEdit(portal.db, actor, user, input)
  await underAdministratorRule(portal, (trx) => writeEdit(trx, actor, edit))
  if (edit.passwordHash) await sendPasswordNotice(portal, user, ADMIN_SET_PASSWORD)
}

const ADMIN_SET_PASSWORD = { unlock: true, via: 'administrator' } as const

function refuseDisablingYourself(actor: Actor, user: User): void {
  refuseCredentials(actor, user, 'disable')
  if (isYourself(actor, user)) throw new ConflictError('You cannot disable yourself.')
}

async function writeEnabled(trx: Db, actor: Actor, user: User, enabled: boolean): Promise<void> {
  await updateUser(trx, user.id, { enabled: enabled ? 1 : 0, updated_at: Date.now() })
  if (enabled) return audit(trx, actor, { action: 'user.enable', target: target(user) })
  // Disabling ends the user's sessions and revokes their API keys: enabling them again does
  // not bring the keys back (they generate new ones).
  await deleteUserSessions(trx, user.id)
  const keysRevoked = await revokeApiKeys(trx, user.id)
  await audit(trx, actor, { action: 'user.disable', target: target(user), fields: { keys_revoked: keysRevoked } })
}

export async function setEnabled(portal: Portal, actor: Actor, user: User, enabled: boolean): Promise<void> {
  if (!enabled) refuseDisablingYourself(actor, user)
  await underAdministratorRule(portal, (trx) => writeEnabled(trx, actor, user, enabled))
}

export async function unlock(db: Db, actor: Actor, user: User): Promise<void> {
  await updateUser(db, user.id, { failed_login_count: 0, locked_until: null, updated_at: Date.now() })
  await audit(db, actor, { action: 'user.unlock', target: target(user) })
}

/** For a lost phone: removes the user's second factors so they can set them up again. */
export async function resetTwoFactor(portal: Portal, actor: Actor, user: User): Promise<void> {
  refuseCredentials(actor, user, 'two-factor')
  const notice = 'An Administrator reset two-factor authentication (you set it up again at your next sign-in)'
  await changeTwoFactor(portal, actor, user, { audit: { action: 'user.two_factor_reset' }, notice, by: 'administrator' }, (trx) => deleteTwoFactor(trx, user.id))
}

/** Another user's API keys, generated by an Administrator (Users > Generate API Keys, PUT /users/{id}/keys). */
export async function generateKeysFor(portal: Portal, actor: Actor, user: User): Promise<{ accessKey: string; secretKey: string }> {
  refuseCredentials(actor, user, 'api-keys')
  return generateApiKeys(portal, actor, user)
}

const DISABLE_FIRST = 'Disable the user before deleting them.'

/** Deletes a disabled user, moving what they owned to the successor, all in one transaction. */
export async function deleteUser(portal: Portal & { log: Log }, actor: Actor, user: User, successorUuid: string) {
  if (user.enabled === 1) throw new ConflictError(DISABLE_FIRST)
  const { db } = portal
  const successor = successorUuid ? await repo.findUserByUuid(db, successorUuid) : undefined
  if (!successor || successor.id === user.id || successor.enabled !== 1) throw new ValidationError({ successor: 'Select the new owner of the user’s objects.' })
  // The instances the user could reach, found before their assignments go.
  const bases = await reachableInstances(portal, user)
  const result = await underAdministratorRule(portal, async (trx) => {
    // Enabled again since the check above: still not to be deleted.
    if (!(await repo.isDisabled(trx, user.id))) throw new ConflictError(DISABLE_FIRST)
    const moved = await repo.deleteUserWithTransfer(trx, user.id, successor.id)
    await audit(trx, actor, { action: 'user.delete', target: target(user), fields: { successor: successor.username, accounts_moved: moved.accounts, logos_moved: moved.logos, saved_searches_deleted: moved.savedSearches } })
    return { successor, moved }
  })
  // Each instance moves the user's objects by the guide's table; delivery is audited.
  await notifyUserTransfer(portal, actor, user, successor, bases).catch((err) => portal.log.warn({ err: (err as Error).message }, 'user transfer notice failed'))
  return result
}

async function reachableInstances(app: Portal, user: User): Promise<string[]> {
  const urls = await distinctInstanceUrls(app.db, user)
  return [...new Set(urls.map((instance_url) => instanceBase(app, { instance_url })).filter((b): b is string => b !== null))]
}

/** Whom an Administrator may act as (Assist in the browser, X-Impersonate in the API): an enabled user, not themselves. */
function refuseActingAs(admin: User, user: User, way: 'assist' | 'impersonate'): void {
  if (user.id === admin.id) throw new ConflictError(`You cannot ${way} yourself.`)
  if (user.enabled !== 1) throw new ConflictError(`You cannot ${way} a disabled user.`)
}

/** The user X-Impersonate names, or undefined when there is none; refused as Assist would refuse them. */
export async function findImpersonationTarget(db: Db, admin: User, username: string): Promise<User | undefined> {
  const user = await findUserByUsername(db, username)
  if (user) refuseActingAs(admin, user, 'impersonate')
  return user
}

/** Assist: the Administrator's session acts as the user until they stop (or the time limit). */
export async function startAssist(db: Db, actor: Actor, sessionId: string | null, user: User): Promise<void> {
  if (actor.assistedBy) throw new ConflictError('You are already assisting a user. Stop assisting first.')
  if (!sessionId) throw new ForbiddenError('Assist works in the browser; API calls use the X-Impersonate header.')
  refuseActingAs(actor.user, user, 'assist')
  await setAssist(db, sessionId, user.id, Date.now())
  await audit(db, actor, { action: 'user.assist_start', target: target(user) })
}

/** Ends the session's assist; the user who was assisted, or null when it was not assisting. */
export async function stopAssist(db: Db, actor: Actor, sessionId: string | null): Promise<User | null> {
  if (!actor.assistedBy || !sessionId) return null
  await audit(db, actor, { action: 'user.assist_stop', target: target(actor.user) })
  await setAssist(db, sessionId, null, Date.now())
  return actor.user
}

// --- API ---
// The REST API's user endpoints compose the rules above. One API call can do what two
// windows do (edit and disable): both in one transaction, so a refusal changes nothing.

/** The Edit User form as it stands for this user (assignments included), with some fields changed. */
async function currentInput(db: Db, user: User, changes: Partial<UserInput>): Promise<UserInput> {
  return {
    name: user.name,
    username: user.username,
    email: user.email ?? '',
    password: '',
    confirm: '',
    role: String(user.role),
    accounts: (await repo.assignedAccounts(db, user.id)).map((a) => a.uuid),
    ...changes,
  }
}

export interface ApiUserChanges {
  permissions?: number
  name?: string
  email?: string | null
  enabled?: boolean
}

/** `PUT /users/{id}`: Edit User (role, name, e-mail; assignments kept) and Disable/Enable, in one transaction. */
export async function updateUserFromApi(portal: Portal, actor: Actor, user: User, changes: ApiUserChanges): Promise<User> {
  const { db } = portal
  const toggling = changes.enabled !== undefined && changes.enabled !== (user.enabled === 1)
  if (toggling && !changes.enabled) refuseDisablingYourself(actor, user)
  const edit = changes.permissions !== undefined || changes.name !== undefined || changes.email !== undefined
    ? await prepareEdit(db, actor, user, await currentInput(db, user, {
      ...(changes.name !== undefined ? { name: changes.name } : {}),
      ...(changes.email !== undefined ? { email: changes.email ?? '' } : {}),
      ...(changes.permissions !== undefined ? { role: String(changes.permissions) } : {}),
    }))
    : null
  await underAdministratorRule(portal, async (trx) => {
    if (edit) await writeEdit(trx, actor, edit)
    if (toggling) await writeEnabled(trx, actor, user, changes.enabled!)
  })
  return (await repo.findUserByUuid(db, user.uuid)) ?? user
}

/**
 * `PUT /users/{id}/chpasswd`: an Administrator sets another user's password (the admin-set
 * rule). Their own is a change of their own password: the current one, the self-service rule.
 */
export async function setPasswordFromApi(portal: Portal, actor: Actor, keepSessionId: string | null, user: User, password: string, currentPassword = ''): Promise<void> {
  if (user.id === actor.assistedBy?.id) throw new ForbiddenError('Change your own password with PUT /session/chpasswd: it asks for the current password.')
  if (user.id === actor.user.id) {
    // The API names the new password `password`.
    return changePassword(portal, actor, keepSessionId, { current_password: currentPassword, new_password: password }).catch((err: unknown) => {
      if (err instanceof ValidationError && err.fieldErrors.new_password) throw new ValidationError({ password: err.fieldErrors.new_password })
      throw err
    })
  }
  await editUser(portal, actor, user, await currentInput(portal.db, user, { password, confirm: password }))
}

export interface Authorizations {
  api_permitted: boolean
  password_permitted: boolean
}

/**
 * `PUT /users/{id}/authorizations`: whether the user's API keys work and whether they may
 * sign in with a password. Turning password sign-in off ends their sessions at once; no one
 * can turn off their own, nor the last enabled Administrator's who still has it.
 */
export async function setAuthorizations(portal: Portal, actor: Actor, user: User, changes: Partial<Authorizations>): Promise<User> {
  const { db } = portal
  const api = changes.api_permitted ?? user.api_permitted === 1
  const password = changes.password_permitted ?? user.password_permitted === 1
  const passwordOff = !password && user.password_permitted === 1
  refuseCredentials(actor, user, 'authorizations')
  if (passwordOff && isYourself(actor, user)) throw new ConflictError('You cannot turn off your own password sign-in.')
  await underAdministratorRule(portal, async (trx) => {
    await updateUser(trx, user.id, { api_permitted: api ? 1 : 0, password_permitted: password ? 1 : 0, updated_at: Date.now() })
    if (passwordOff) await deleteUserSessions(trx, user.id)
    await audit(trx, actor, { action: 'user.authorizations_update', target: target(user), fields: { api_permitted: api, password_permitted: password } })
  })
  return (await repo.findUserByUuid(db, user.uuid)) ?? user
}
