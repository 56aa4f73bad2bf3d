import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import { ASSISTING_MESSAGE } from '../my-account/service.ts'
import { ForbiddenError, HttpError, ValidationError } from '../../lib/errors.ts'
import { errorSchema } from '../api/routes.ts'
import { deleteTwoFactor, findTwoFactor, upsertTwoFactor } from '../two-factor/repository.ts'
import { ResendLimitError } from '../two-factor/service.ts'
import { audit } from '../audit/service.ts'
import * as service from './service.ts'

// Tenable's two-factor endpoints under /users/{id}: the caller's own 2FA only
// (Administrators cannot configure another user's, as the guide says).

const idParams = z.object({ id: z.string().min(1).max(64) })
const booleanish = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')])

function requireSelf(request: FastifyRequest, id: string): void {
  const user = request.auth!.user
  if (id !== String(user.id) && id !== user.uuid) throw new ForbiddenError('You can configure only your own two-factor authentication.')
}

function badRequest(err: unknown): never {
  if (err instanceof ValidationError) throw new HttpError(400, Object.values(err.fieldErrors)[0] ?? err.message)
  if (err instanceof ResendLimitError) throw new HttpError(429, err.message)
  throw err
}

const routes: FastifyPluginAsyncZod = async (app) => {
  // While assisting (or impersonating), the user's password, 2FA and keys stay theirs to change.
  app.addHook('preHandler', async (request) => {
    if (request.method !== 'GET' && request.auth?.assistedBy) throw new ForbiddenError(ASSISTING_MESSAGE)
  })
  app.post('/users/:id/two-factor/send-verification', {
    config: { access: 'user' },
    schema: { tags: ['two-factor'], summary: 'Send a verification code by text message to a new phone number (your own account)', params: idParams, body: z.object({ sms_phone: z.string().min(1).max(40) }), response: { 200: z.object({}), 400: errorSchema, 403: errorSchema } },
  }, async (request) => {
    requireSelf(request, request.params.id)
    await service.startPhoneSetup(request, request.body.sms_phone).catch(badRequest)
    return {}
  })

  app.post('/users/:id/two-factor/verify-code', {
    config: { access: 'user' },
    schema: { tags: ['two-factor'], summary: 'Confirm the phone number with the code it received', params: idParams, body: z.object({ verification_code: z.coerce.string().min(1).max(20) }), response: { 200: z.object({}), 400: errorSchema, 403: errorSchema } },
  }, async (request) => {
    requireSelf(request, request.params.id)
    await service.confirmPhoneSetup(request, request.body.verification_code).catch(badRequest)
    return {}
  })

  app.put('/users/:id/two-factor', {
    config: { access: 'user' },
    schema: {
      tags: ['two-factor'],
      summary: 'Turn text-message codes and backup e-mail codes on or off (your own account)',
      params: idParams,
      body: z.object({ sms_enabled: booleanish.optional(), email_enabled: booleanish.optional(), sms_phone: z.string().max(40).optional() }),
      response: { 200: z.object({}), 400: errorSchema, 403: errorSchema },
    },
  }, async (request) => {
    requireSelf(request, request.params.id)
    const user = request.auth!.user
    const tf = await findTwoFactor(app.db, user.id)
    const { sms_enabled, email_enabled, sms_phone } = request.body
    if (sms_enabled === true && !tf?.sms_phone) throw new HttpError(400, 'Verify a phone number first (send-verification, then verify-code).')
    if (sms_phone && tf?.sms_phone && service.normalisePhone(sms_phone) !== tf.sms_phone) throw new HttpError(400, 'A new phone number must be verified first (send-verification, then verify-code).')
    if (sms_enabled === false && tf?.sms_phone) {
      // Without another factor, turning SMS off turns two-factor authentication off.
      if (tf.totp_secret) await upsertTwoFactor(app.db, user.id, { sms_phone: null })
      else await deleteTwoFactor(app.db, user.id)
      await audit(app.db, request, { action: 'user.two_factor_disable', target: { type: 'user', id: user.uuid, name: user.username }, fields: { method: 'sms' } })
    }
    if (email_enabled === true) await service.setBackupEmail(request, true).catch(badRequest)
    if (email_enabled === false && (await findTwoFactor(app.db, user.id))) await upsertTwoFactor(app.db, user.id, { email_enabled: 0 })
    return {}
  })
}

export default routes
