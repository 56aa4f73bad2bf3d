import type { FastifyInstance } from 'fastify'

// Graceful shutdown (docs/operations.md): stop accepting connections, let the requests in
// progress finish (Fastify answers new ones on open connections with 503), close the
// database, exit 0; exit 1 if that takes longer than the timeout.
//
// Fastify closes the keep-alive connections that are idle when the close begins. A
// connection whose request was still in progress goes idle a moment later and would then
// hold server.close() (and so the database and the process) until the CLIENT gives up on
// it: 72 s with Fastify's keep-alive timeout, well past any orchestrator's grace period.
// So while closing, idle connections are closed as they appear.

export const SHUTDOWN_TIMEOUT_MS = 10_000

/** Closes the app; resolves with the exit code: 0 closed, 1 failed or timed out. */
export async function closeGracefully(app: FastifyInstance, timeoutMs = SHUTDOWN_TIMEOUT_MS): Promise<number> {
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

export interface SignalOptions {
  timeoutMs?: number
  signals?: NodeJS.Signals[]
  exit?: (code: number) => void
}

/** On SIGTERM or SIGINT (once), closes the app gracefully and exits. Returns an uninstaller. */
export function exitOnSignals(app: FastifyInstance, opts: SignalOptions = {}): () => void {
  const { timeoutMs = SHUTDOWN_TIMEOUT_MS, signals = ['SIGTERM', 'SIGINT'], exit = (code) => process.exit(code) } = opts
  let closing = false
  const handler = (signal: NodeJS.Signals) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down')
    void closeGracefully(app, timeoutMs).then(exit)
  }
  for (const s of signals) process.on(s, handler)
  return () => {
    for (const s of signals) process.off(s, handler)
  }
}
