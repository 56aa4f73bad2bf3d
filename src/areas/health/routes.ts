import type { FastifyPluginAsync } from 'fastify'
import { databaseAnswers, sqliteHealth } from '../../db/index.ts'
import { isDraining } from '../../ops/shutdown.ts'

// Liveness and readiness for load balancers and the Docker HEALTHCHECK. /healthz never
// touches the database; /readyz says 503 while the portal shuts down or writes cannot get
// through (docs/operations.md).
const routes: FastifyPluginAsync = async (app) => {
  const health = sqliteHealth(app.db)
  if (health) health.log = app.log
  app.get('/healthz', { config: { access: 'public' }, logLevel: 'warn' }, async () => ({ status: 'ok' }))
  app.get('/readyz', { config: { access: 'public' }, logLevel: 'warn' }, async (_request, reply) => {
    if (isDraining(app)) return reply.code(503).send({ status: 'shutting down' })
    if (health) {
      // Synchronous and without waiting: a query through Kysely would queue behind a write
      // waiting for the lock.
      const problem = health.problem()
      return problem ? reply.code(503).send({ status: 'database cannot save', code: problem }) : { status: 'ready' }
    }
    return (await databaseAnswers(app.db)) ? { status: 'ready' } : reply.code(503).send({ status: 'database unavailable' })
  })
}

export default routes
