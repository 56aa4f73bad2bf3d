import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { ZodError } from 'zod'
import { HttpError, SecondFactorRequiredError, TwoFactorSetupRequiredError, UnauthorizedError } from '../lib/errors.ts'
import { isHtmx } from './session.ts'
import { BadTextError } from './bodies.ts'
import { unavailableError } from '../db/faults.ts'

const REASONS: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  409: 'Conflict', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Entity',
  429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable',
}

export function wantsJson(request: FastifyRequest): boolean {
  return request.url.startsWith('/api/') || request.url === '/api' || 'x-apikeys' in request.headers
}

function sendError(request: FastifyRequest, reply: FastifyReply, status: number, message: string, extra: object = {}) {
  if (wantsJson(request)) {
    return reply.code(status).type('application/json').send({ statusCode: status, error: REASONS[status] ?? 'Error', message, ...extra })
  }
  return reply.render('errors/error', { status, title: REASONS[status] ?? 'Error', message }, { status, fragment: 'errors/_error' })
}

/** Turns thrown errors into the error page or the API's JSON; never a stack trace. */
export default fp(async function errors(app) {
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    if (error instanceof UnauthorizedError && !wantsJson(request)) {
      if (isHtmx(request)) return reply.header('HX-Redirect', '/login').code(401).send()
      const params = new URLSearchParams()
      if (request.sessionEnded) params.set('m', 'expired')
      if (request.method === 'GET') params.set('next', request.url)
      const query = params.toString()
      return reply.redirect(`/login${query ? `?${query}` : ''}`, 303)
    }
    // Half-signed-in sessions go to the code step; users the portal requires 2FA of, to setup.
    const detour = error instanceof SecondFactorRequiredError ? '/login/verify' : error instanceof TwoFactorSetupRequiredError ? '/my-account?setup=required' : null
    if (detour && !wantsJson(request)) {
      if (isHtmx(request)) return reply.header('HX-Redirect', detour).code((error as HttpError).statusCode).send()
      return reply.redirect(detour, 303)
    }
    // The database cannot save right now (locked, full, read-only): 503, try again later.
    const unavailable = unavailableError(error)
    if (unavailable) return sendError(request, reply.header('retry-after', String(unavailable.retryAfterSeconds)), 503, unavailable.message)
    if (error instanceof HttpError) return sendError(request, reply, error.statusCode, error.message, error instanceof BadTextError ? { errors: error.errors } : {})
    // A form or query that does not parse: a clear 400, never a 500.
    if ((error as unknown) instanceof ZodError) {
      const issues = (error as unknown as ZodError).issues
      return sendError(request, reply, 400, 'Some of the values sent are not valid.', { errors: issues.map((i) => ({ path: `/${i.path.join('/')}`, message: i.message })) })
    }
    if (error.validation) {
      return sendError(request, reply, 400, error.message, { errors: error.validation.map((v) => ({ path: v.instancePath, message: v.message })) })
    }
    const status = error.statusCode ?? 500
    if (status >= 400 && status < 500) return sendError(request, reply, status, error.message)
    request.log.error({ err: error }, 'request failed')
    return sendError(request, reply, 500, 'Something went wrong on our side. The error has been logged; please try again.')
  })

  app.setNotFoundHandler(async (request, reply) =>
    sendError(request, reply, 404, 'The page or object you asked for does not exist.'),
  )
})
