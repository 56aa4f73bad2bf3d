import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { ASSISTING_MESSAGE } from '../my-account/service.ts'
import { ForbiddenError } from '../../lib/errors.ts'
import { hashPassword, verifyPassword } from '../../lib/passwords.ts'
import { checkPassword } from '../../lib/password-policy.ts'
import { HttpError } from '../../lib/errors.ts'
import { deleteUserSessions, updateUser } from '../auth/repository.ts'
import { audit } from '../audit/service.ts'
import { apiUserSchema, toApiUser } from './user-object.ts'
import { lastApiKeyUse } from './repository.ts'
import { generateApiKeys } from './service.ts'
import { findTwoFactor } from '../two-factor/repository.ts'

export const errorSchema = z.object({ statusCode: z.number(), error: z.string(), message: z.string() }).passthrough()
const keysSchema = z.object({ accessKey: z.string(), secretKey: z.string() })

/** The caller's own session endpoints (Tenable's `/session`). */
const routes: FastifyPluginAsyncZod = async (app) => {
  // While assisting (or impersonating), the user's password, 2FA and keys stay theirs to change.
  app.addHook('preHandler', async (request) => {
    if (request.method !== 'GET' && request.auth?.assistedBy) throw new ForbiddenError(ASSISTING_MESSAGE)
  })
  app.get('/session', {
    config: { access: 'user' },
    schema: { tags: ['session'], summary: "The caller's user object", response: { 200: apiUserSchema, 401: errorSchema } },
  }, async (request) => {
    const user = request.auth!.user
    return toApiUser(user, { lastApiKeyAccess: await lastApiKeyUse(app.db, user.id), twoFactor: await findTwoFactor(app.db, user.id) })
  })

  app.put('/session/keys', {
    config: { access: 'user' },
    schema: { tags: ['session'], summary: "Generate the caller's API keys (replaces existing keys)", response: { 200: keysSchema, 401: errorSchema } },
  }, async (request) => generateApiKeys(request, request.auth!.user))

  app.put('/session/chpasswd', {
    config: { access: 'user' },
    schema: {
      tags: ['session'],
      summary: "Change the caller's password",
      body: z.object({ password: z.string().min(1).max(256), current_password: z.string().min(1).max(1000) }),
      response: { 200: z.object({}), 400: errorSchema, 401: errorSchema },
    },
  }, async (request) => {
    const { user, session } = request.auth!
    const { password, current_password } = request.body
    if (!(await verifyPassword(user.password_hash, current_password))) {
      await audit(app.db, request, { action: 'user.password_change', outcome: 'failure', target: { type: 'user', id: user.uuid, name: user.username }, fields: { reason: 'wrong current password' } })
      throw new HttpError(400, 'The current password is not correct.')
    }
    const policy = checkPassword(password, 'self-service')
    if (policy) throw new HttpError(400, policy)
    const now = Date.now()
    await updateUser(app.db, user.id, { password_hash: await hashPassword(password), password_changed_at: now, updated_at: now })
    // A password change ends the user's other sessions.
    await deleteUserSessions(app.db, user.id, session?.id)
    await audit(app.db, request, { action: 'user.password_change', target: { type: 'user', id: user.uuid, name: user.username } })
    return {}
  })
}

export default routes
