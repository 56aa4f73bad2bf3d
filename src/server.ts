import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.ts'
import type { Config } from './config.ts'
import { bootstrapFirstAdministrator } from './ops/bootstrap.ts'
import { clearExpiredMessages } from './areas/outbox/service.ts'
import { startingUntil } from './areas/health/routes.ts'
import { exitOnSignals } from './ops/shutdown.ts'

/**
 * Work that grows with the data, run once the port is open (/healthz answers meanwhile,
 * /readyz says "starting" until it ends): reset links and codes that expired while the
 * portal was stopped (a read-only database is the readiness check's business, not a
 * reason to fail).
 */
export function afterListen(app: FastifyInstance): Promise<void> {
  const work = clearExpiredMessages(app.db).then(
    () => undefined,
    (err: unknown) => app.log.warn({ err }, 'could not clear expired outbox messages'),
  )
  startingUntil(app, work)
  return work
}

/** Starts the portal and listens; only this module listens (tests use app.inject). */
export async function serve(config: Config): Promise<FastifyInstance> {
  const app = await buildApp(config)
  try {
    await bootstrapFirstAdministrator(app, (line) => process.stdout.write(line + '\n'))
  } catch (err) {
    await app.close()
    throw err
  }
  await app.listen({ port: config.port, host: config.host })
  void afterListen(app)
  // SIGTERM/SIGINT: /readyz 503, serve on for the drain period, then close (finishing the
  // requests in progress) and exit 0 (1 if closing takes more than 10 s).
  exitOnSignals(app, { drainMs: config.shutdownDrainSeconds * 1000 })
  return app
}
