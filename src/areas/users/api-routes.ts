import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { TwoFactor, User } from '../../db/schema.ts'
import { PORTAL_CONTAINER_UUID } from '../../lib/container.ts'
import { ConflictError, HttpError, ValidationError } from '../../lib/errors.ts'
import { ADMINISTRATOR, ROLES } from '../../lib/roles.ts'
import { findUserByUsername } from '../auth/repository.ts'
import { lastApiKeyUse } from '../api/repository.ts'
import { errorSchema, keysSchema } from '../api/schemas.ts'
import { apiError } from '../api/errors.ts'
import { apiUserSchema, toApiUser } from '../api/user-object.ts'
import { StepUpLockedError } from '../my-account/step-up.ts'
import { actorOf } from '../../plugins/session.ts'
import type { Portal } from '../../types.ts'
import { findTwoFactor } from '../two-factor/repository.ts'
import * as repo from './repository.ts'
import * as service from './service.ts'

// Tenable's user endpoints (Administrator): list, read, create, edit, password, enable and
// disable, API keys, delete with transfer, and the per-user authorizations. Every rule is the
// Users pages' own (service.ts); this file only translates requests and answers. See API.md.

// --- Input: JSON bodies and plain form posts alike ---

const TRUE = new Set(['true', '1', 'on', 'yes'])
const FALSE = new Set(['false', '0', 'off', 'no'])
/** A boolean from JSON or a form field ("true"/"false", "1"/"0", "on"/"off"). */
const booleanish = z.preprocess((v) => {
  if (typeof v !== 'string') return v
  const s = v.trim().toLowerCase()
  return TRUE.has(s) ? true : FALSE.has(s) ? false : v
}, z.boolean())

const LEVELS = ROLES.map((r) => r.level) as [number, ...number[]]
const permissions = z
  .preprocess((v) => (typeof v === 'string' && /^\s*\d{1,3}\s*$/.test(v) ? Number(v) : v), z.literal(LEVELS, { error: `Must be one of ${ROLES.map((r) => `${r.level} (${r.label})`).join(', ')}.` }))
  .describe(`The role: ${ROLES.map((r) => `${r.level} ${r.label}`).join(', ')}`)
const csrfField = z.string().optional().describe('CSRF token, for browser form posts only')

const idParams = z.object({ id: z.string().min(1).max(64).describe('The integer id or the uuid') })

const createBody = z.object({
  username: z.string().max(1000).describe('name@domain, with a domain approved for this portal'),
  password: z.string().max(1000).describe('At least 8 characters with three of: uppercase, lowercase, number, special character'),
  permissions,
  name: z.string().max(1000).optional().describe('Full name (the username when left out)'),
  email: z.string().max(1000).nullable().optional(),
  type: z.literal('local').optional(),
  _csrf: csrfField,
})
const updateBody = z.object({
  permissions: permissions.optional(),
  name: z.string().max(1000).optional(),
  email: z.string().max(1000).nullable().optional(),
  enabled: booleanish.optional(),
  _csrf: csrfField,
})
const authorizationsSchema = z.object({
  account_uuid: z.string(),
  user_uuid: z.string(),
  api_permitted: z.boolean(),
  password_permitted: z.boolean(),
  saml_permitted: z.boolean(),
})
const authorizationsBody = z.object({
  api_permitted: booleanish.optional().describe('The user’s API keys authenticate'),
  password_permitted: booleanish.optional().describe('The user may sign in with a password'),
  saml_permitted: booleanish.optional().refine((v) => v !== true, 'SAML sign-in is not available in this portal: it stays false.').describe('Always false'),
  _csrf: csrfField,
})

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema }

// --- Output ---

/** Tenable's user object, with the portal's authorizations (`ui_permitted`: password sign-in). */
function apiUser(user: User, extra: { lastApiKeyAccess: number | null; undeletable: boolean; twoFactor: TwoFactor | null | undefined }) {
  return { ...toApiUser(user, extra), api_permitted: user.api_permitted === 1, ui_permitted: user.password_permitted === 1 }
}

async function oneUser({ db }: Pick<Portal, 'db'>, user: User) {
  return apiUser(user, {
    lastApiKeyAccess: await lastApiKeyUse(db, user.id),
    undeletable: await service.isLastEnabledAdministrator(db, user),
    twoFactor: await findTwoFactor(db, user.id),
  })
}

function authorizations(user: User) {
  return { account_uuid: PORTAL_CONTAINER_UUID, user_uuid: user.uuid, api_permitted: user.api_permitted === 1, password_permitted: user.password_permitted === 1, saml_permitted: false }
}

/** The service's field names are the form's: `role` is the API's `permissions`. */
const API_FIELD: Record<string, string> = { role: 'permissions', confirm: 'password' }

/** A ValidationError from the rules as a 400 that says what was wrong, field by field (`errors`, as for schema errors). */
function badRequest(err: unknown): never {
  if (!(err instanceof ValidationError)) throw err
  const list = Object.entries(err.fieldErrors).map(([field, message]) => ({ instancePath: `/${API_FIELD[field] ?? field}`, message }))
  throw Object.assign(new Error(list.map((x) => `${x.instancePath.slice(1)}: ${x.message}`).join('; ') || err.message), { statusCode: 400, validation: list })
}

const routes: FastifyPluginAsyncZod = async (app) => {
  const admin = { access: 'administrator' as const }

  app.get('/users', {
    config: admin,
    schema: { tags: ['users'], summary: 'List the portal’s users', response: { 200: z.object({ users: z.array(apiUserSchema) }), ...errors } },
  }, async () => {
    const rows = await repo.listUsersForApi(app.db)
    const administrators = await repo.countAdministrators(app.db)
    return {
      users: rows.map(({ tf_sms_phone, tf_email_enabled, api_key_last_used_at, ...user }) =>
        apiUser(user, {
          lastApiKeyAccess: api_key_last_used_at,
          undeletable: user.role === ADMINISTRATOR && user.enabled === 1 && administrators.enabled === 1,
          twoFactor: { sms_phone: tf_sms_phone, email_enabled: tf_email_enabled ?? 0 } as TwoFactor,
        }),
      ),
    }
  })

  app.get('/users/:id', {
    config: admin,
    schema: { tags: ['users'], summary: 'One user, by the integer id or the uuid', params: idParams, response: { 200: apiUserSchema, ...errors } },
  }, async (request) => oneUser(app, await service.requireUser(app.db, request.params.id)))

  app.post('/users', {
    config: admin,
    schema: {
      tags: ['users'],
      summary: 'Create a user',
      description: 'The username is name@domain with a domain approved for this portal (400 otherwise; 409 when taken). The password follows the rule for passwords an Administrator sets.',
      body: createBody,
      response: { 200: apiUserSchema, ...errors },
    },
  }, async (request) => {
    const { username, password, permissions: role, name, email } = request.body
    if (await findUserByUsername(app.db, username.trim().toLowerCase())) throw new ConflictError('A user with this username already exists.')
    const user = await service
      .createUser(app.db, actorOf(request), { username, password, confirm: password, role: String(role), name: name ?? username.trim().toLowerCase(), email: email ?? '', accounts: [] })
      .catch(badRequest)
    return oneUser(app, user)
  })

  app.put('/users/:id', {
    config: admin,
    schema: {
      tags: ['users'],
      summary: 'Change a user’s role, name, e-mail or enabled state',
      description: 'Fields left out stay as they are; account assignments are kept (an Administrator has none). The last enabled Administrator cannot be demoted or disabled, and no one can disable themselves (409). Disabling revokes the user’s API keys. Passwords are not set here: PUT /users/{id}/chpasswd (another user) or PUT /session/chpasswd (your own).',
      params: idParams,
      body: updateBody,
      response: { 200: apiUserSchema, ...errors },
    },
  }, async (request) => {
    const user = await service.requireUser(app.db, request.params.id)
    const { _csrf, ...changes } = request.body
    if (Object.values(changes).every((v) => v === undefined)) throw new HttpError(400, 'Nothing to change: send any of permissions, name, email, enabled.')
    return oneUser(app, await service.updateUserFromApi(app, actorOf(request), user, changes).catch(badRequest))
  })

  app.put('/users/:id/chpasswd', {
    config: admin,
    schema: {
      tags: ['users'],
      summary: 'Set another user’s password',
      description: 'The rule for passwords an Administrator sets; the user’s sessions end. Your own id: send current_password too (the self-service rule, as PUT /session/chpasswd; 429 with Retry-After while too many wrong ones lock the account).',
      params: idParams,
      body: z.object({ password: z.string().max(1000), current_password: z.string().max(1000).optional(), _csrf: csrfField }),
      response: { 200: z.object({}), ...errors, 429: errorSchema },
    },
  }, async (request, reply) => {
    const user = await service.requireUser(app.db, request.params.id)
    const lockout = apiError(reply)
    await service.setPasswordFromApi(app, actorOf(request), request.auth!.session?.id ?? null, user, request.body.password, request.body.current_password).catch((err: unknown) => (err instanceof StepUpLockedError ? lockout(err) : badRequest(err)))
    return {}
  })

  app.put('/users/:id/enabled', {
    config: admin,
    schema: {
      tags: ['users'],
      summary: 'Enable or disable a user',
      description: 'Disabling ends the user’s sessions and revokes their API keys (enabling them again does not bring the keys back: they generate new ones). Not yourself, nor the last enabled Administrator (409).',
      params: idParams,
      body: z.object({ enabled: booleanish, _csrf: csrfField }),
      response: { 200: apiUserSchema, ...errors },
    },
  }, async (request) => {
    const user = await service.requireUser(app.db, request.params.id)
    await service.setEnabled(app, actorOf(request), user, request.body.enabled)
    return oneUser(app, await service.requireUser(app.db, user.uuid))
  })

  app.put('/users/:id/keys', {
    config: admin,
    schema: {
      tags: ['users'],
      summary: 'Generate a user’s API keys (replaces their existing keys)',
      description: 'The secret key is shown once. Not for the user you are impersonating: their keys stay theirs to change (403).',
      params: idParams,
      response: { 200: keysSchema, ...errors },
    },
  }, async (request) => {
    return service.generateKeysFor(app, actorOf(request), await service.requireUser(app.db, request.params.id))
  })

  app.delete('/users/:id', {
    config: admin,
    schema: {
      tags: ['users'],
      summary: 'Delete a disabled user, moving their objects to a successor',
      description: 'Only a disabled user (409 otherwise). The accounts and logos they created move to the successor (an enabled user); their saved searches are deleted; the audit log keeps their name.',
      params: idParams,
      querystring: z.object({ successor_user_uuid: z.uuid().describe('The enabled user who receives the deleted user’s objects') }),
      response: { 200: z.object({}), ...errors },
    },
  }, async (request) => {
    const user = await service.requireUser(app.db, request.params.id)
    await service.deleteUser(app, actorOf(request), user, request.query.successor_user_uuid).catch(badRequest)
    return {}
  })

  app.get('/users/:id/authorizations', {
    config: admin,
    schema: { tags: ['users'], summary: 'How the user may authenticate', params: idParams, response: { 200: authorizationsSchema, ...errors } },
  }, async (request) => authorizations(await service.requireUser(app.db, request.params.id)))

  app.put('/users/:id/authorizations', {
    config: admin,
    schema: {
      tags: ['users'],
      summary: 'Allow or refuse the user’s API keys and password sign-in',
      description: 'Fields left out stay as they are. With api_permitted false the user’s API keys get 401; with password_permitted false password sign-in is refused and their sessions end. saml_permitted stays false (400 if true). No one can turn off their own password sign-in, nor that of the last enabled Administrator who has it (409).',
      params: idParams,
      body: authorizationsBody,
      response: { 200: authorizationsSchema, ...errors },
    },
  }, async (request) => {
    const user = await service.requireUser(app.db, request.params.id)
    const { api_permitted, password_permitted } = request.body
    return authorizations(await service.setAuthorizations(app, actorOf(request), user, { api_permitted, password_permitted }))
  })
}

export default routes
