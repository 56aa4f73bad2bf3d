import type { FastifyPluginAsync } from 'fastify'
import { sql } from 'kysely'

// Liveness and readiness for load balancers and the Docker HEALTHCHECK.
const routes: FastifyPluginAsync = async (app) => {
  app.get('/healthz', { config: { access: 'public' }, logLevel: 'warn' }, async () => ({ status: 'ok' }))
  app.get('/readyz', { config: { access: 'public' }, logLevel: 'warn' }, async (_request, reply) => {
    try {
      await sql`select 1`.execute(app.db)
      return { status: 'ready' }
    } catch {
      return reply.code(503).send({ status: 'database unavailable' })
    }
  })
}

export default routes
