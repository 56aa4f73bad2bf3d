import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import formbody from '@fastify/formbody'
import fastifyStatic from '@fastify/static'
import type { Config } from './config.ts'
import { openDatabase } from './db/index.ts'
import { migrateToLatest } from './db/migrations.ts'
import { loadOrCreateKey } from './lib/keys.ts'
import { Messenger, type Transport } from './areas/outbox/service.ts'
import { SmsWebhookTransport, SmtpTransport } from './areas/outbox/transports.ts'
import { setHashConcurrency } from './lib/passwords.ts'
import authorization from './plugins/authorization.ts'
import routeTable from './plugins/route-table.ts'
import metrics, { kyselyQueryLog, recordWriteFault } from './ops/metrics.ts'
import bodies from './plugins/bodies.ts'
import errors from './plugins/errors.ts'
import refusals from './plugins/refusals.ts'
import security from './plugins/security.ts'
import session from './plugins/session.ts'
import views from './plugins/views.ts'
import api, { registerApiRoutes } from './plugins/api.ts'
import authRoutes from './areas/auth/routes.ts'
import verifyRoutes from './areas/auth/verify-routes.ts'
import myAccountRoutes from './areas/my-account/routes.ts'
import usersRoutes from './areas/users/routes.ts'
import instancesRoutes from './areas/instances/routes.ts'
import { DEMO_INSTANCE_PATH } from './areas/instances/service.ts'
import myAccountApiRoutes from './areas/my-account/api-routes.ts'
import usersApiRoutes from './areas/users/api-routes.ts'
import accountsRoutes from './areas/accounts/routes.ts'
import accountsApiRoutes from './areas/accounts/api-routes.ts'
import accountsTransferRoutes from './areas/accounts/transfer-routes.ts'
import logosRoutes from './areas/logos/routes.ts'
import logosApiRoutes from './areas/logos/api-routes.ts'
import resourcesRoutes from './areas/resources/routes.ts'
import settingsRoutes from './areas/settings/routes.ts'
import auditRoutes from './areas/audit/routes.ts'
import auditApiRoutes from './areas/audit/api-routes.ts'
import healthRoutes from './areas/health/routes.ts'
import { getResourceLinks, getSettings } from './areas/settings/service.ts'
import { audit } from './areas/audit/service.ts'
import { authenticateApiKeys, parseApiKeysHeader } from './areas/api/service.ts'
import { findImpersonationTarget } from './areas/users/service.ts'
import './types.ts'

export interface BuildOptions {
  /** PostgreSQL schema (tests give each file its own). */
  pgSchema?: string
  logger?: FastifyServerOptions['logger']
}

import { HTMX_DIR, PUBLIC_DIR } from './lib/paths.ts'
export { PUBLIC_DIR }

/** Log lines carry the path only: query strings can hold reset and setup tokens. */
export function loggerOptions(config: Config): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    redact: { paths: ['req.headers', 'password', 'token', 'secret', '*.password', '*.token'], remove: true },
    serializers: {
      req: (req) => ({ method: req.method, url: (req.url ?? '').split('?')[0], remoteAddress: req.ip }),
    },
  }
}

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    logger: options.logger ?? loggerOptions(config),
    trustProxy: config.trustProxy as boolean | string,
    // Forms and JSON; the account import alone takes more (its routes say so).
    bodyLimit: 1_048_576,
    // Never echo a request id that might be mistaken for a secret; generate our own.
    genReqId: () => crypto.randomUUID(),
  })
  if (config.argon2Concurrency) setHashConcurrency(config.argon2Concurrency)

  const observer = {
    query: kyselyQueryLog(),
    writeFault: recordWriteFault,
    idleConnectionLost: (err: Error) => app.log.warn({ err: err.message }, 'an idle PostgreSQL connection was lost'),
  }
  const handle = openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, pgSchema: options.pgSchema, observer })
  app.decorate('config', config)
  app.decorate('db', handle.db)
  app.decorate('dialect', handle.dialect)
  app.decorate('sqlite', handle.sqlite ?? null)
  app.addHook('onClose', async () => {
    await handle.db.destroy()
  })
  await migrateToLatest(handle.db, { pgSchema: options.pgSchema })

  app.decorate('keys', {
    session: loadOrCreateKey(config.dataDir, 'session', config.sessionKey),
    secrets: loadOrCreateKey(config.dataDir, 'secrets', config.secretsKey),
  })

  const transports: Partial<Record<'email' | 'sms', Transport>> = {}
  if (config.smtpUrl) transports.email = new SmtpTransport(config.smtpUrl, config.mailFrom)
  if (config.smsWebhookUrl) transports.sms = new SmsWebhookTransport(config.smsWebhookUrl)
  app.decorate('messenger', new Messenger(handle.db, app.log, transports, new Set(config.smsViaOutbox ? ['email', 'sms'] : ['email'])))

  // Plugins import no area: what each needs of one is passed here.
  await app.register(authorization, { require2fa: async () => (await getSettings(app.db)).require2fa })
  await app.register(routeTable)
  await app.register(metrics, { token: config.metricsToken })
  await app.register(formbody)
  await app.register(bodies)
  await app.register(session)
  await app.register(security)
  await app.register(views, { resourceLinks: () => getResourceLinks(app.db) })
  await app.register(errors)
  await app.register(refusals, { record: (summary) => audit(app.db, null, summary) })
  await app.register(api, {
    parseKeys: parseApiKeysHeader,
    authenticate: (keys) => authenticateApiKeys(app, keys),
    impersonationTarget: (admin, username) => findImpersonationTarget(app.db, admin, username),
  })
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/static/', maxAge: '1h', index: false })
  await app.register(fastifyStatic, { root: HTMX_DIR, prefix: '/static/htmx/', decorateReply: false, maxAge: '1d', index: false, allowedPath: (p) => p === '/htmx.min.js' })

  await app.register(healthRoutes)
  await app.register(authRoutes)
  await app.register(verifyRoutes)
  await app.register(myAccountRoutes)
  await app.register(usersRoutes)
  await app.register(instancesRoutes)
  // The demo customer instance, under its own path, trusting this portal's keys.
  if (config.demoInstance) {
    const { demoInstancePlugin } = await import('./demo-instance/app.ts')
    await app.register(demoInstancePlugin({ portalUrl: config.baseUrl, origin: new URL(config.baseUrl).origin, basePath: DEMO_INSTANCE_PATH }), { prefix: DEMO_INSTANCE_PATH })
  }
  await app.register(accountsRoutes)
  await app.register(accountsTransferRoutes)
  await app.register(logosRoutes)
  await app.register(resourcesRoutes)
  await app.register(settingsRoutes)
  await app.register(auditRoutes)
  await registerApiRoutes(app, accountsApiRoutes)
  await registerApiRoutes(app, logosApiRoutes)
  await registerApiRoutes(app, myAccountApiRoutes)
  await registerApiRoutes(app, usersApiRoutes)
  await registerApiRoutes(app, auditApiRoutes)
  return app
}
