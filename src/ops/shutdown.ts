import type http from 'node:http'
import type { FastifyInstance } from 'fastify'

// Graceful shutdown (docs/operations.md):
// 1. drain: /readyz answers 503 at once, so that a load balancer stops sending, but every
//    request is still served for the drain period; each answer carries `Connection: close`,
//    so a client's keep-alive connection ends after its request in an orderly way (the
//    client knows not to reuse it) instead of being cut under a request it just sent;
// 2. close: stop accepting connections, close the idle ones, let the requests in progress
//    finish, close the database, exit 0; exit 1 if closing takes longer than the timeout.
//
// Fastify closes the keep-alive connections that are idle when the close begins. A
// connection whose request was still in progress goes idle a moment later and would then
// hold server.close() (and so the database and the process) until the CLIENT gives up on
// it: 72 s with Fastify's keep-alive timeout, well past any orchestrator's grace period.
// So while closing, idle connections are closed as they appear.

export const SHUTDOWN_TIMEOUT_MS = 10_000

const draining = new WeakSet<http.Server>()

/** True from the shutdown signal on: /readyz answers 503. */
export function isDraining(app: FastifyInstance): boolean {
  return draining.has(app.server)
}

/** Starts the drain: /readyz says 503 and every answer from now on closes its connection. */
export function beginDrain(app: FastifyInstance): void {
  if (draining.has(app.server)) return
  draining.add(app.server)
  // Before Fastify's own listener, so that the header is set before anything is sent.
  app.server.prependListener('request', (_request: http.IncomingMessage, response: http.ServerResponse) => {
    response.setHeader('connection', 'close')
  })
}

export interface CloseOptions {
  /** Keep serving this long after the drain starts; default 0. */
  drainMs?: number
  /** Give up on the close (exit code 1) after this long; counted after the drain. */
  timeoutMs?: number
}

/** Drains, then closes the app; resolves with the exit code: 0 closed, 1 failed or timed out. */
export async function closeGracefully(app: FastifyInstance, opts: CloseOptions = {}): Promise<number> {
  const { drainMs = 0, timeoutMs = SHUTDOWN_TIMEOUT_MS } = opts
  beginDrain(app)
  if (drainMs > 0) await new Promise((resolve) => setTimeout(resolve, drainMs))
  const sweep = setInterval(() => app.server.closeIdleConnections?.(), 50)
  sweep.unref()
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<number>((resolve) => {
    timer = setTimeout(() => {
      app.log.error({ timeoutMs }, 'shutdown took too long; exiting anyway')
      resolve(1)
    }, timeoutMs)
    timer.unref()
  })
  const closed = app.close().then(
    () => 0,
    (err: unknown) => {
      app.log.error({ err }, 'error while shutting down')
      return 1
    },
  )
  try {
    return await Promise.race([closed, timedOut])
  } finally {
    clearInterval(sweep)
    clearTimeout(timer)
  }
}

export interface SignalOptions extends CloseOptions {
  signals?: NodeJS.Signals[]
  exit?: (code: number) => void
}

/** On SIGTERM or SIGINT (once), drains, closes the app gracefully and exits. Returns an uninstaller. */
export function exitOnSignals(app: FastifyInstance, opts: SignalOptions = {}): () => void {
  const { signals = ['SIGTERM', 'SIGINT'], exit = (code) => process.exit(code), ...close } = opts
  let closing = false
  const handler = (signal: NodeJS.Signals) => {
    if (closing) return
    closing = true
    app.log.info({ signal, drainMs: close.drainMs ?? 0 }, 'shutting down: draining, then closing')
    void closeGracefully(app, close).then(exit)
  }
  for (const s of signals) process.on(s, handler)
  return () => {
    for (const s of signals) process.off(s, handler)
  }
}
