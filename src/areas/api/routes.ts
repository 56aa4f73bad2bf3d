import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { actorOf } from '../../plugins/session.ts'
import { changePassword, refuseWhileAssisting } from '../my-account/service.ts'
import { apiError } from './errors.ts'
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
    if (request.method !== 'GET' && request.auth) refuseWhileAssisting(actorOf(request))
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
  }, async (request) => generateApiKeys(app, actorOf(request), request.auth!.user))

  app.put('/session/chpasswd', {
    config: { access: 'user' },
    schema: {
      tags: ['session'],
      summary: "Change the caller's password",
      description: 'Asks for the current password: a wrong one counts toward the lockout like a failed sign-in (429 with Retry-After while locked). The other sessions end, reset links stop working and the user is told by e-mail.',
      body: z.object({ password: z.string().min(1).max(256), current_password: z.string().min(1).max(1000) }),
      response: { 200: z.object({}), 400: errorSchema, 401: errorSchema, 403: errorSchema, 429: errorSchema },
    },
  }, async (request, reply) => {
    await changePassword(app, actorOf(request), request.auth!.session?.id ?? null, { current_password: request.body.current_password, new_password: request.body.password }).catch(apiError(reply))
    return {}
  })
}

export default routes
