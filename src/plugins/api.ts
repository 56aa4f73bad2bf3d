import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod'
import { authenticateApiKeys, parseApiKeysHeader } from '../areas/api/service.ts'
import { databaseRateLimitStore } from '../ops/rate-limit-store.ts'
import { ConflictError, ForbiddenError, HttpError, NotFoundError, UnauthorizedError } from '../lib/errors.ts'
import { ADMINISTRATOR } from '../lib/roles.ts'
import { findUserByUsername } from '../areas/auth/repository.ts'
import pkg from '../../package.json' with { type: 'json' }

const HAS_API_KEYS = 'present'

/**
 * A route constraint on the X-ApiKeys header: Tenable's clients call `/users`, not
 * `/api/users`, so every API route is also served at the root to requests carrying keys,
 * while pages at the same paths stay untouched for browsers.
 */
const apiKeysConstraint = {
  name: 'apiKeys',
  storage() {
    const handlers = new Map<string, unknown>()
    return {
      get: (value: string) => (handlers.get(value) ?? null) as never,
      set: (value: string, handler: unknown) => void handlers.set(value, handler),
    }
  },
  deriveConstraint: (req: { headers: Record<string, unknown> }) => ('x-apikeys' in req.headers ? HAS_API_KEYS : undefined),
  mustMatchWhenDerived: false,
}

/** API plumbing shared by every area: key authentication, the constraint, OpenAPI. */
declare module 'fastify' {
  interface FastifyInstance {
    /** `METHOD /api/path` of every API route, for the OpenAPI completeness test. */
    apiRoutes: string[]
  }
}

export default fp(async (app) => {
  app.decorate('apiRoutes', [])
  app.addConstraintStrategy(apiKeysConstraint)

  // X-ApiKeys authenticates a request on any path; a bad header is a 401, never a fallback to the cookie.
  app.addHook('onRequest', (request, _reply, done) => {
    // Most requests carry neither header: no promise for them.
    if (!('x-apikeys' in request.headers) && !('x-impersonate' in request.headers)) return done()
    authenticateRequest(request).then(() => done(), done)
  })
  async function authenticateRequest(request: FastifyRequest) {
    if ('x-apikeys' in request.headers) {
      const user = await authenticateApiKeys(app, request.headers['x-apikeys'])
      if (!user) throw new UnauthorizedError('Invalid API keys.')
      request.auth = { user, session: null, via: 'api-key', has2fa: false, assistedBy: null }
    }
    if ('x-impersonate' in request.headers && request.auth) await impersonate(request)
  }

  await app.register(swagger, {
    openapi: {
      info: { title: 'MSSP Portal API', version: pkg.version, description: 'Tenable-compatible MSSP and user APIs. Authenticate with `X-ApiKeys: accessKey=...;secretKey=...`.' },
      components: { securitySchemes: { apiKeys: { type: 'apiKey', in: 'header', name: 'X-ApiKeys' } } },
      security: [{ apiKeys: [] }],
    },
    transform: (args) => (args.url.startsWith('/api/') && !args.url.startsWith('/api/docs') ? jsonSchemaTransform(args) : { schema: { ...args.schema, hide: true }, url: args.url }),
  })
  await app.register(swaggerUi, {
    routePrefix: '/api/docs',
    staticCSP: "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; object-src 'none'; base-uri 'none'",
  })
  app.get('/api/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () => app.swagger())
})

/**
 * `X-Impersonate: username=...` on an Administrator's API call acts as that user (Tenable's
 * assist for the API): the same rules as assisting in the browser, audited with both names.
 */
async function impersonate(request: FastifyRequest): Promise<void> {
  const auth = request.auth!
  const username = /^\s*username\s*=\s*(\S+)\s*$/.exec(String(request.headers['x-impersonate']))?.[1]?.toLowerCase()
  if (auth.user.role !== ADMINISTRATOR || auth.assistedBy) throw new ForbiddenError('Only an Administrator can impersonate a user.')
  if (!username) throw new HttpError(400, 'X-Impersonate must be username=<username>.')
  const target = await findUserByUsername(request.server.db, username)
  if (!target) throw new NotFoundError('No user has this username.')
  if (target.id === auth.user.id) throw new ConflictError('You cannot impersonate yourself.')
  if (target.enabled !== 1) throw new ConflictError('You cannot impersonate a disabled user.')
  request.auth = { ...auth, user: target, has2fa: true, assistedBy: auth.user }
}

function rateLimitKey(request: FastifyRequest): string {
  const keys = parseApiKeysHeader(request.headers['x-apikeys'])
  return keys ? `key:${keys.accessKey}` : `ip:${request.ip}`
}

/**
 * Registers one area's API routes twice from one definition: under `/api`, and at the root
 * for requests with X-ApiKeys (hidden from the OpenAPI document, which lists `/api`).
 */
export async function registerApiRoutes(app: FastifyInstance, routes: FastifyPluginAsync): Promise<void> {
  // On PostgreSQL (several processes) the counters live in the database, one budget per
  // client across the whole API; SQLite (one process) keeps the in-memory store.
  const store = app.dialect === 'postgres'
    ? databaseRateLimitStore(app.db, { namespace: 'api', onCleanupError: (err) => app.log.warn({ err }, 'rate-limit clean-up failed') })
    : undefined
  for (const [prefix, constrained] of [['/api', false], ['', true]] as const) {
    await app.register(async (scope) => {
      scope.setValidatorCompiler(validatorCompiler)
      scope.setSerializerCompiler(serializerCompiler)
      await scope.register(rateLimit, {
        max: app.config.apiRateLimitPerMinute,
        timeWindow: 60_000,
        keyGenerator: rateLimitKey,
        ...(store ? { store } : {}),
      })
      scope.addHook('onRoute', (route) => {
        ;(route.config as { api?: boolean }).api = true
        if (constrained) route.constraints = { ...route.constraints, apiKeys: HAS_API_KEYS }
        else if (route.method !== 'HEAD') app.apiRoutes.push(`${String(route.method)} ${route.url}`)
      })
      await scope.register(routes)
    }, { prefix })
  }
}
