import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { ForbiddenError, HttpError } from '../../lib/errors.ts'
import { actorOf } from '../../plugins/session.ts'
import { apiError } from '../api/errors.ts'
import { lastApiKeyUse } from '../api/repository.ts'
import { errorSchema, keysSchema } from '../api/schemas.ts'
import { generateApiKeys } from '../api/service.ts'
import { apiUserSchema, toApiUser } from '../api/user-object.ts'
import { findTwoFactor } from '../two-factor/repository.ts'
import { ResendLimitError } from '../two-factor/service.ts'
import * as service from './service.ts'

// My Account in the API: the caller's own session endpoints (Tenable's `/session`), and
// Tenable's two-factor endpoints under /users/{id}: the caller's own 2FA only
// (Administrators cannot configure another user's, as the guide says).

const idParams = z.object({ id: z.string().min(1).max(64) })
const booleanish = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')])

function requireSelf(request: FastifyRequest, id: string): void {
  const user = request.auth!.user
  if (id !== String(user.id) && id !== user.uuid) throw new ForbiddenError('You can configure only your own two-factor authentication.')
}

/** 400 for invalid input (a missing or wrong current password included), 429 for limits and a lockout. */
function refusal(reply: FastifyReply) {
  const stepUp = apiError(reply)
  return (err: unknown): never => {
    if (err instanceof ResendLimitError) throw new HttpError(429, err.message)
    return stepUp(err)
  }
}

const currentPassword = z.string().max(1000).describe('Your current password: every change of two-factor authentication asks for it (400 when missing or wrong; 429 with Retry-After while too many wrong ones lock the account).')

const routes: FastifyPluginAsyncZod = async (app) => {
  // While assisting (or impersonating), the user's password, 2FA and keys stay theirs to change.
  app.addHook('preHandler', async (request) => {
    if (request.method !== 'GET' && request.auth) service.refuseWhileAssisting(actorOf(request))
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
    const { password, current_password } = request.body
    await service.changePassword(app, actorOf(request), request.auth!.session?.id ?? null, { current_password, new_password: password }).catch(apiError(reply))
    return {}
  })

  app.post('/users/:id/two-factor/send-verification', {
    config: { access: 'user' },
    schema: { tags: ['two-factor'], summary: 'Send a verification code by text message to a new phone number (your own account)', params: idParams, body: z.object({ sms_phone: z.string().min(1).max(40), current_password: currentPassword }), response: { 200: z.object({}), 400: errorSchema, 403: errorSchema, 429: errorSchema } },
  }, async (request, reply) => {
    requireSelf(request, request.params.id)
    await service.startPhoneSetup(app, actorOf(request), request.body.sms_phone, request.body.current_password).catch(refusal(reply))
    return {}
  })

  app.post('/users/:id/two-factor/verify-code', {
    config: { access: 'user' },
    schema: { tags: ['two-factor'], summary: 'Confirm the phone number with the code it received', params: idParams, body: z.object({ verification_code: z.coerce.string().min(1).max(20) }), response: { 200: z.object({}), 400: errorSchema, 403: errorSchema } },
  }, async (request, reply) => {
    requireSelf(request, request.params.id)
    await service.confirmPhoneSetup(app, actorOf(request), request.body.verification_code).catch(refusal(reply))
    return {}
  })

  app.put('/users/:id/two-factor', {
    config: { access: 'user' },
    schema: {
      tags: ['two-factor'],
      summary: 'Turn text-message codes and backup e-mail codes on or off (your own account)',
      params: idParams,
      body: z.object({ sms_enabled: booleanish.optional(), email_enabled: booleanish.optional(), sms_phone: z.string().max(40).optional(), current_password: currentPassword }),
      response: { 200: z.object({}), 400: errorSchema, 403: errorSchema, 429: errorSchema },
    },
  }, async (request, reply) => {
    requireSelf(request, request.params.id)
    const { current_password, ...changes } = request.body
    await service.updateTwoFactorFromApi(app, actorOf(request), changes, current_password).catch(refusal(reply))
    return {}
  })
}

export default routes
