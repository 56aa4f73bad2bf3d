import type { FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import { z } from 'zod'
import type { Database, User } from '../../db/schema.ts'
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

const target = (u: Pick<User, 'uuid' | 'username'>) => ({ type: 'user', id: u.uuid, name: u.username })

/** The user a path names by its integer id (pyTenable) or its uuid; anything else names no one (404). */
export async function requireUser(request: FastifyRequest, idOrUuid: string): Promise<User> {
  const { db } = request.server
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
async function underAdministratorRule<T>(request: FastifyRequest, change: (trx: Db) => Promise<T>): Promise<T> {
  const { db, dialect } = request.server
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
export function credentialsRefusal(request: FastifyRequest, user: User, credential: Credential): string | null {
  const { user: actingAs, assistedBy } = request.auth!
  if (assistedBy && user.id === actingAs.id) return credential === 'authorizations' || credential === 'disable' ? ASSISTED_ACCESS : ASSISTING_MESSAGE
  if (user.id !== (assistedBy ?? actingAs).id) return null
  return credential === 'password' ? OWN_PASSWORD : credential === 'two-factor' ? OWN_TWO_FACTOR : null
}

function refuseCredentials(request: FastifyRequest, user: User, credential: Exclude<Credential, 'password'>): void {
  const refusal = credentialsRefusal(request, user, credential)
  if (refusal) throw new ForbiddenError(refusal)
}

async function validate(request: FastifyRequest, input: UserInput, existing: User | null): Promise<{ errors: Record<string, string>; role: number; accountIds: number[] }> {
  const { db } = request.server
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
  const passwordRefusal = existing && input.password ? credentialsRefusal(request, existing, 'password') : null
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
    const found = await findVisibleAccountIds(db, request.auth!.user, [...new Set(input.accounts)])
    if (found.length !== new Set(input.accounts).size) errors.accounts = 'One or more of the selected accounts no longer exist.'
    accountIds = found.map((f) => f.id)
  }
  return { errors, role, accountIds }
}

export async function createUser(request: FastifyRequest, input: UserInput): Promise<User> {
  const { errors, role, accountIds } = await validate(request, input, null)
  if (Object.keys(errors).length) throw new ValidationError(errors)
  const passwordHash = await hashPassword(input.password)
  const now = Date.now()
  return request.server.db.transaction().execute(async (trx) => {
    const user = await insertUser(trx, newUser({ username: input.username, name: input.name, email: input.email, passwordHash, role, now }))
    if (accountIds.length) await replaceAssignments(trx, user.id, accountIds, now)
    await audit(trx, request, { action: 'user.create', target: target(user), fields: { role: roleLabel(role), accounts: accountIds.length } })
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

async function prepareEdit(request: FastifyRequest, user: User, input: UserInput): Promise<Edit> {
  const { errors, role, accountIds } = await validate(request, { ...input, username: user.username }, user)
  if (Object.keys(errors).length) throw new ValidationError(errors)
  const passwordHash = input.password ? await hashPassword(input.password) : null
  return { user, name: input.name.trim(), email: input.email.trim() || null, role, accountIds, passwordHash }
}

async function writeEdit(trx: Db, request: FastifyRequest, { user, name, email, role, accountIds, passwordHash }: Edit): Promise<void> {
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
  if (passwordHash) await writeNewPassword(trx, request, user, passwordHash, ADMIN_SET_PASSWORD)
  await audit(trx, request, {
    action: 'user.update',
    target: target(user),
    fields: { role: roleLabel(role), role_changed: role !== user.role, password_changed: Boolean(passwordHash), accounts: role === ADMINISTRATOR ? 0 : accountIds.length },
  })
}

/** Saves the Edit User form; role and assignment changes apply on the user's next request. */
export async function editUser(request: FastifyRequest, user: User, input: UserInput): Promise<void> {
  const edit = await prepareEdit(request, user, input)
  await underAdministratorRule(request, (trx) => writeEdit(trx, request, edit))
  if (edit.passwordHash) await sendPasswordNotice(request, user, ADMIN_SET_PASSWORD)
}

const ADMIN_SET_PASSWORD = { unlock: true, via: 'administrator' } as const

function refuseDisablingYourself(request: FastifyRequest, user: User): void {
  refuseCredentials(request, user, 'disable')
  const me = request.auth!.assistedBy ?? request.auth!.user
  if (user.id === me.id) throw new ConflictError('You cannot disable yourself.')
}

async function writeEnabled(trx: Db, request: FastifyRequest, user: User, enabled: boolean): Promise<void> {
  await updateUser(trx, user.id, { enabled: enabled ? 1 : 0, updated_at: Date.now() })
  if (enabled) return audit(trx, request, { action: 'user.enable', target: target(user) })
  // Disabling ends the user's sessions and revokes their API keys: enabling them again does
  // not bring the keys back (they generate new ones).
  await deleteUserSessions(trx, user.id)
  const keysRevoked = await revokeApiKeys(trx, user.id)
  await audit(trx, request, { action: 'user.disable', target: target(user), fields: { keys_revoked: keysRevoked } })
}

export async function setEnabled(request: FastifyRequest, user: User, enabled: boolean): Promise<void> {
  if (!enabled) refuseDisablingYourself(request, user)
  await underAdministratorRule(request, (trx) => writeEnabled(trx, request, user, enabled))
}

export async function unlock(request: FastifyRequest, user: User): Promise<void> {
  await updateUser(request.server.db, user.id, { failed_login_count: 0, locked_until: null, updated_at: Date.now() })
  await audit(request.server.db, request, { action: 'user.unlock', target: target(user) })
}

/** For a lost phone: removes the user's second factors so they can set them up again. */
export async function resetTwoFactor(request: FastifyRequest, user: User): Promise<void> {
  refuseCredentials(request, user, 'two-factor')
  const notice = 'An Administrator reset two-factor authentication (you set it up again at your next sign-in)'
  await changeTwoFactor(request, user, { audit: { action: 'user.two_factor_reset' }, notice, by: 'administrator' }, (trx) => deleteTwoFactor(trx, user.id))
}

/** Another user's API keys, generated by an Administrator (Users > Generate API Keys, PUT /users/{id}/keys). */
export async function generateKeysFor(request: FastifyRequest, user: User): Promise<{ accessKey: string; secretKey: string }> {
  refuseCredentials(request, user, 'api-keys')
  return generateApiKeys(request, user)
}

const DISABLE_FIRST = 'Disable the user before deleting them.'

/** Deletes a disabled user, moving what they owned to the successor, all in one transaction. */
export async function deleteUser(request: FastifyRequest, user: User, successorUuid: string) {
  if (user.enabled === 1) throw new ConflictError(DISABLE_FIRST)
  const { db } = request.server
  const successor = successorUuid ? await repo.findUserByUuid(db, successorUuid) : undefined
  if (!successor || successor.id === user.id || successor.enabled !== 1) throw new ValidationError({ successor: 'Select the new owner of the user’s objects.' })
  // The instances the user could reach, found before their assignments go.
  const bases = await reachableInstances(request, user)
  const result = await underAdministratorRule(request, async (trx) => {
    // Enabled again since the check above: still not to be deleted.
    if (!(await repo.isDisabled(trx, user.id))) throw new ConflictError(DISABLE_FIRST)
    const moved = await repo.deleteUserWithTransfer(trx, user.id, successor.id)
    await audit(trx, request, { action: 'user.delete', target: target(user), fields: { successor: successor.username, accounts_moved: moved.accounts, logos_moved: moved.logos, saved_searches_deleted: moved.savedSearches } })
    return { successor, moved }
  })
  // Each instance moves the user's objects by the guide's table; delivery is audited.
  await notifyUserTransfer(request.server, request, user, successor, bases).catch((err) => request.log.warn({ err: (err as Error).message }, 'user transfer notice failed'))
  return result
}

async function reachableInstances(request: FastifyRequest, user: User): Promise<string[]> {
  const app = request.server
  const urls = await distinctInstanceUrls(app.db, user)
  return [...new Set(urls.map((instance_url) => instanceBase(app, { instance_url })).filter((b): b is string => b !== null))]
}

/** Assist: the Administrator's session acts as the user until they stop (or the time limit). */
export async function startAssist(request: FastifyRequest, user: User): Promise<void> {
  const auth = request.auth!
  if (auth.assistedBy) throw new ConflictError('You are already assisting a user. Stop assisting first.')
  if (!auth.session) throw new ForbiddenError('Assist works in the browser; API calls use the X-Impersonate header.')
  if (user.id === auth.user.id) throw new ConflictError('You cannot assist yourself.')
  if (user.enabled !== 1) throw new ConflictError('You cannot assist a disabled user.')
  await setAssist(request.server.db, auth.session.id, user.id, Date.now())
  await audit(request.server.db, request, { action: 'user.assist_start', target: target(user) })
}

export async function stopAssist(request: FastifyRequest): Promise<User | null> {
  const auth = request.auth!
  if (!auth.assistedBy || !auth.session) return null
  const assisted = auth.user
  await audit(request.server.db, request, { action: 'user.assist_stop', target: target(assisted) })
  await setAssist(request.server.db, auth.session.id, null, Date.now())
  return assisted
}

// --- API ---
// The REST API's user endpoints compose the rules above. One API call can do what two
// windows do (edit and disable): both in one transaction, so a refusal changes nothing.

/** The Edit User form as it stands for this user (assignments included), with some fields changed. */
async function currentInput(request: FastifyRequest, user: User, changes: Partial<UserInput>): Promise<UserInput> {
  return {
    name: user.name,
    username: user.username,
    email: user.email ?? '',
    password: '',
    confirm: '',
    role: String(user.role),
    accounts: (await repo.assignedAccounts(request.server.db, user.id)).map((a) => a.uuid),
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
export async function updateUserFromApi(request: FastifyRequest, user: User, changes: ApiUserChanges): Promise<User> {
  const { db } = request.server
  const toggling = changes.enabled !== undefined && changes.enabled !== (user.enabled === 1)
  if (toggling && !changes.enabled) refuseDisablingYourself(request, user)
  const edit = changes.permissions !== undefined || changes.name !== undefined || changes.email !== undefined
    ? await prepareEdit(request, user, await currentInput(request, user, {
      ...(changes.name !== undefined ? { name: changes.name } : {}),
      ...(changes.email !== undefined ? { email: changes.email ?? '' } : {}),
      ...(changes.permissions !== undefined ? { role: String(changes.permissions) } : {}),
    }))
    : null
  await underAdministratorRule(request, async (trx) => {
    if (edit) await writeEdit(trx, request, edit)
    if (toggling) await writeEnabled(trx, request, user, changes.enabled!)
  })
  return (await repo.findUserByUuid(db, user.uuid)) ?? user
}

/**
 * `PUT /users/{id}/chpasswd`: an Administrator sets another user's password (the admin-set
 * rule). Their own is a change of their own password: the current one, the self-service rule.
 */
export async function setPasswordFromApi(request: FastifyRequest, user: User, password: string, currentPassword = ''): Promise<void> {
  const auth = request.auth!
  if (user.id === auth.assistedBy?.id) throw new ForbiddenError('Change your own password with PUT /session/chpasswd: it asks for the current password.')
  if (user.id === auth.user.id) {
    // The API names the new password `password`.
    return changePassword(request, { current_password: currentPassword, new_password: password }).catch((err: unknown) => {
      if (err instanceof ValidationError && err.fieldErrors.new_password) throw new ValidationError({ password: err.fieldErrors.new_password })
      throw err
    })
  }
  await editUser(request, user, await currentInput(request, user, { password, confirm: password }))
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
export async function setAuthorizations(request: FastifyRequest, user: User, changes: Partial<Authorizations>): Promise<User> {
  const { db } = request.server
  const me = request.auth!.assistedBy ?? request.auth!.user
  const api = changes.api_permitted ?? user.api_permitted === 1
  const password = changes.password_permitted ?? user.password_permitted === 1
  const passwordOff = !password && user.password_permitted === 1
  refuseCredentials(request, user, 'authorizations')
  if (passwordOff && user.id === me.id) throw new ConflictError('You cannot turn off your own password sign-in.')
  await underAdministratorRule(request, async (trx) => {
    await updateUser(trx, user.id, { api_permitted: api ? 1 : 0, password_permitted: password ? 1 : 0, updated_at: Date.now() })
    if (passwordOff) await deleteUserSessions(trx, user.id)
    await audit(trx, request, { action: 'user.authorizations_update', target: target(user), fields: { api_permitted: api, password_permitted: password } })
  })
  return (await repo.findUserByUuid(db, user.uuid)) ?? user
}
