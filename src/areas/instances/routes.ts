import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import { ConflictError } from '../../lib/errors.ts'
import { actorOf } from '../../plugins/session.ts'
import { requireVisibleAccount } from '../accounts/service.ts'
import { appLabel } from '../accounts/licensed-apps.ts'
import { publishedKeys } from './signing-keys.ts'
import { signAssertion } from './service.ts'

const accountParams = z.object({ uuid: z.string() })

// Instances: the single sign-on button of the Accounts page, and the public keys that
// let an instance check the portal's assertions.
const routes: FastifyPluginAsync = async (app) => {
  app.get('/.well-known/jwks.json', { config: { access: 'public' } }, async (_request, reply) => {
    reply.header('Cache-Control', 'public, max-age=300')
    return publishedKeys(app)
  })

  // A CSRF-protected POST: the answer is a page whose form carries the signed assertion to
  // the instance (sent by a script, or by the Continue button without JavaScript).
  app.post('/accounts/:uuid/sso', { config: { access: 'user' } }, async (request, reply) => {
    const account = await requireVisibleAccount(app.db, actorOf(request), accountParams.parse(request.params).uuid)
    let signed
    try {
      signed = await signAssertion(app, actorOf(request), account)
    } catch (err) {
      if (err instanceof ConflictError) return reply.render('errors/error', { status: 409, title: 'Single sign-on unavailable', message: err.message }, { status: 409 })
      throw err
    }
    // This page may post to exactly one other origin: the instance's.
    reply.header(
      'Content-Security-Policy',
      `default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action ${signed.origin}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'`,
    )
    reply.header('Cache-Control', 'no-store')
    return reply.render('instances/sso', {
      title: 'Single sign-on',
      account,
      interfaceLabel: appLabel(signed.interface),
      action: signed.action,
      assertion: signed.assertion,
    })
  })
}

export default routes
