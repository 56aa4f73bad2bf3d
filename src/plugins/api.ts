import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest, onRequestHookHandler } from 'fastify'
import rateLimit, { normalizeIP } from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod'
import { databaseFailureCounter, databaseRateLimitStore, memoryFailureCounter } from '../ops/rate-limit-store.ts'
import { ConflictError, ForbiddenError, HttpError, NotFoundError, UnauthorizedError } from '../lib/errors.ts'
import { ADMINISTRATOR } from '../lib/roles.ts'
import type { User } from '../db/schema.ts'
import { hasBadText } from './bodies.ts'
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
    /** The API's one rate limit: every API route counts against the same budget per client. */
    apiRateLimit: onRequestHookHandler
  }
}

/**
 * Failed API-key attempts allowed per address and per access key in a minute; past them,
 * any key attempt from that address (or for that access key) is answered 429 before the
 * lookup and the HMAC it would cost.
 */
export const API_KEY_FAILURES_PER_MINUTE = 10

type ApiKeys = { accessKey: string; secretKey: string }

/** What the API plumbing needs of the areas (app.ts passes the api and auth areas' functions). */
export interface ApiOptions {
  /** The X-ApiKeys header's keys, or null when it is malformed. */
  parseKeys(header: string | string[] | undefined): ApiKeys | null
  /** The enabled user these keys belong to, or null. */
  authenticate(keys: ApiKeys): Promise<User | null>
  /** A user by (lower-case) username, for X-Impersonate. */
  findUserByUsername(username: string): Promise<User | undefined>
}

export default fp<ApiOptions>(async (app, opts) => {
  const rateLimitKey = (request: FastifyRequest): string => {
    const keys = opts.parseKeys(request.headers['x-apikeys'])
    return keys ? `key:${keys.accessKey}` : `ip:${request.ip}`
  }
  app.decorate('apiRoutes', [])
  app.addConstraintStrategy(apiKeysConstraint)

  // On PostgreSQL (several processes) the counters live in the database; SQLite (one
  // process) keeps them in memory.
  const shared = app.dialect === 'postgres'
  const failures = shared ? databaseFailureCounter(app.db, 'api-key-failures', 60_000) : memoryFailureCounter(60_000)
  const store = shared ? databaseRateLimitStore(app.db, { namespace: 'api', onCleanupError: (err) => app.log.warn({ err }, 'rate-limit clean-up failed') }) : undefined
  // One limiter (one store) for the whole API, added to each API route by registerApiRoutes.
  await app.register(async (scope) => {
    await scope.register(rateLimit, { global: false, max: app.config.apiRateLimitPerMinute, timeWindow: 60_000, keyGenerator: rateLimitKey, ...(store ? { store } : {}) })
    app.decorate('apiRateLimit', scope.rateLimit() as unknown as onRequestHookHandler)
  })

  // X-ApiKeys authenticates a request on any path; a bad header is a 401, never a fallback to the cookie.
  app.addHook('onRequest', async (request, reply) => {
    if ('x-apikeys' in request.headers) {
      const keys = opts.parseKeys(request.headers['x-apikeys'])
      const counted = [`ip:${normalizeIP(request.ip)}`, ...(keys ? [`key:${keys.accessKey}`] : [])]
      const peak = await failures.peak(counted)
      if (peak.count >= API_KEY_FAILURES_PER_MINUTE) {
        reply.header('Retry-After', String(Math.max(1, Math.ceil(peak.ttl / 1000))))
        throw new HttpError(429, 'Too many failed API key attempts. Try again later.')
      }
      const user = keys ? await opts.authenticate(keys) : null
      if (!user) {
        await failures.add(counted)
        throw new UnauthorizedError('Invalid API keys.')
      }
      request.auth = { user, session: null, via: 'api-key', has2fa: false, assistedBy: null }
    }
    if ('x-impersonate' in request.headers) {
      // For API-key calls to the API only: a browser assists instead (time-limited, marked, audited).
      if (request.auth?.via !== 'api-key' || !request.routeOptions.config.api) throw new HttpError(400, 'X-Impersonate is accepted only on API calls authenticated by API keys.')
      await impersonate(request, opts.findUserByUsername)
    }
  })

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
async function impersonate(request: FastifyRequest, findUserByUsername: ApiOptions['findUserByUsername']): Promise<void> {
  const auth = request.auth!
  const username = /^\s*username\s*=\s*(\S+)\s*$/.exec(String(request.headers['x-impersonate']))?.[1]?.toLowerCase()
  if (auth.user.role !== ADMINISTRATOR || auth.assistedBy) throw new ForbiddenError('Only an Administrator can impersonate a user.')
  if (!username || hasBadText(username)) throw new HttpError(400, 'X-Impersonate must be username=<username>.')
  const target = await findUserByUsername(username)
  if (!target) throw new NotFoundError('No user has this username.')
  if (target.id === auth.user.id) throw new ConflictError('You cannot impersonate yourself.')
  if (target.enabled !== 1) throw new ConflictError('You cannot impersonate a disabled user.')
  request.auth = { ...auth, user: target, has2fa: true, assistedBy: auth.user }
}

/**
 * Registers one area's API routes twice from one definition: under `/api`, and at the root
 * for requests with X-ApiKeys (hidden from the OpenAPI document, which lists `/api`).
 */
export async function registerApiRoutes(app: FastifyInstance, routes: FastifyPluginAsync): Promise<void> {
  for (const [prefix, constrained] of [['/api', false], ['', true]] as const) {
    await app.register(async (scope) => {
      scope.setValidatorCompiler(validatorCompiler)
      scope.setSerializerCompiler(serializerCompiler)
      scope.addHook('onRoute', (route) => {
        ;(route.config as { api?: boolean }).api = true
        route.onRequest = [...(route.onRequest ? [route.onRequest].flat() : []), app.apiRateLimit]
        if (constrained) route.constraints = { ...route.constraints, apiKeys: HAS_API_KEYS }
        else if (route.method !== 'HEAD') app.apiRoutes.push(`${String(route.method)} ${route.url}`)
      })
      await scope.register(routes)
    }, { prefix })
  }
}
