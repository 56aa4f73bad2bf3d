import crypto from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { LogEvent, Logger } from 'kysely'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import pkg from '../../package.json' with { type: 'json' }

// Prometheus metrics at GET /metrics (see docs/operations.md):
//
// - http_requests_total and http_request_duration_seconds, labelled by method, route
//   PATTERN (`/api/mssp/accounts/:account_uuid`, never the URL the client sent: no ids or
//   query strings in the labels, and a bounded number of series) and status code;
// - mssp_sign_ins_total{outcome}: `signInCounter`, incremented by the sign-in code;
// - mssp_db_query_duration_seconds{operation,outcome}: from Kysely's `log` option
//   (`kyselyQueryLog()`);
// - mssp_db_write_faults_total{code} and mssp_db_writes_failing: database faults (a lock
//   held too long, a full disk, a read-only file), `recordWriteFault` as src/db/faults.ts
//   reports them. app.ts hands both to openDatabase as its observer: db/ knows no metrics;
// - Node's process metrics (CPU, memory, event loop lag, GC) and mssp_portal_info{version}.
//
// Who may read them: with METRICS_TOKEN set, only requests carrying
// `Authorization: Bearer <METRICS_TOKEN>`; without it, only clients on the loopback
// interface that came through no proxy. Anyone else gets the portal's ordinary 404.

/** Metrics that live as long as the process (shared by every app built in it). */
export const processRegistry = new Registry()

/** Sign-in attempts by outcome (success, failure), as audited under `auth.sign_in`. */
export const signInCounter = new Counter({
  name: 'mssp_sign_ins_total',
  help: 'Sign-in attempts (password or second factor), by outcome.',
  labelNames: ['outcome'] as const,
  registers: [processRegistry],
})

export const dbQueryDuration = new Histogram({
  name: 'mssp_db_query_duration_seconds',
  help: 'Database query time as Kysely measures it, by operation and outcome.',
  labelNames: ['operation', 'outcome'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [processRegistry],
})

export const dbWriteFaults = new Counter({
  name: 'mssp_db_write_faults_total',
  help: 'Database statements refused by a fault (SQLITE_BUSY after the wait, SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY), by code.',
  labelNames: ['code'] as const,
  registers: [processRegistry],
})

export const dbWritesFailing = new Gauge({
  name: 'mssp_db_writes_failing',
  help: '1 while the last database write failed with a fault (until one succeeds), else 0.',
  registers: [processRegistry],
})
dbWritesFailing.set(0)

new Gauge({ name: 'mssp_portal_info', help: 'The running portal version (always 1).', labelNames: ['version'] as const, registers: [processRegistry] }).set(
  { version: pkg.version },
  1,
)

let defaultMetrics = false
function collectProcessMetrics(): void {
  if (defaultMetrics) return
  defaultMetrics = true
  collectDefaultMetrics({ register: processRegistry })
}

const OPERATIONS: Record<string, string> = {
  SelectQueryNode: 'select',
  InsertQueryNode: 'insert',
  UpdateQueryNode: 'update',
  DeleteQueryNode: 'delete',
  MergeQueryNode: 'merge',
}
const RAW_OPERATIONS = new Set(['select', 'insert', 'update', 'delete', 'with', 'pragma', 'begin', 'commit', 'rollback'])

function operationOf(event: LogEvent): string {
  const kind = event.query.query.kind
  const known = OPERATIONS[kind]
  if (known) return known
  if (kind === 'RawNode') {
    const word = /^\s*(\w+)/.exec(event.query.sql)?.[1]?.toLowerCase() ?? ''
    return RAW_OPERATIONS.has(word) ? word : 'other'
  }
  return 'schema'
}

/**
 * Kysely's `log` option: times every query into mssp_db_query_duration_seconds. The SQL
 * text is never a label (unbounded); only the kind of statement is.
 *
 *   new Kysely<Database>({ dialect, log: kyselyQueryLog() })
 */
export function kyselyQueryLog(): Logger {
  return (event) => {
    dbQueryDuration.observe({ operation: operationOf(event), outcome: event.level === 'error' ? 'error' : 'ok' }, event.queryDurationMillis / 1000)
  }
}

/** A write refused by a database fault (its code), or writes getting through again (null). */
export function recordWriteFault(code: string | null): void {
  if (code) dbWriteFaults.inc({ code })
  dbWritesFailing.set(code ? 1 : 0)
}

export interface MetricsOptions {
  /** A bearer token readers must present; default METRICS_TOKEN. Unset or empty: loopback only. */
  token?: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's own metrics (HTTP); process-wide ones are in `processRegistry`. */
    metrics: { registry: Registry }
  }
}

/** Requests the router matched no route for share one label, never their URL. */
export const UNMATCHED_ROUTE = '(unmatched)'

function isLoopback(address: string | undefined): boolean {
  if (!address) return false
  return address === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/i.test(address)
}

const digest = (value: string) => crypto.createHash('sha256').update(value, 'utf8').digest()

/** Equal strings, in time that does not depend on where they differ (nor on their lengths). */
export function tokensMatch(given: string, expected: string): boolean {
  return crypto.timingSafeEqual(digest(given), digest(expected))
}

export function mayReadMetrics(request: FastifyRequest, token: string | undefined): boolean {
  if (token) {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(String(request.headers.authorization ?? ''))
    // Compare even without a header, so that a missing header takes the same time.
    const ok = tokensMatch(match?.[1] ?? '', token)
    return ok && Boolean(match)
  }
  // The socket's own peer, not request.ip: a reverse proxy on this host connects from the
  // loopback address on behalf of anyone, so a request it forwarded is not a local one.
  const forwarded = 'x-forwarded-for' in request.headers || 'forwarded' in request.headers || 'x-real-ip' in request.headers
  return !forwarded && isLoopback(request.socket.remoteAddress)
}

export default fp<MetricsOptions>(
  async (app, opts) => {
    const token = opts.token ?? process.env.METRICS_TOKEN ?? ''
    collectProcessMetrics()
    const registry = new Registry()
    const labelNames = ['method', 'route', 'status_code'] as const
    const duration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time to serve an HTTP request, by method, route pattern and status code.',
      labelNames,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    })
    const requests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests served, by method, route pattern and status code.',
      labelNames,
      registers: [registry],
    })
    app.decorate('metrics', { registry })

    app.addHook('onResponse', async (request, reply) => {
      const labels = { method: request.method, route: request.routeOptions.url ?? UNMATCHED_ROUTE, status_code: String(reply.statusCode) }
      duration.observe(labels, reply.elapsedTime / 1000)
      requests.inc(labels)
    })

    app.get('/metrics', { config: { access: 'public' }, logLevel: 'warn', schema: { hide: true } }, async (request, reply) => {
      if (!mayReadMetrics(request, token)) return reply.callNotFound()
      const [own, shared] = await Promise.all([registry.metrics(), processRegistry.metrics()])
      return reply
        .header('content-type', registry.contentType)
        .header('cache-control', 'no-store')
        .send(`${shared.trimEnd()}\n\n${own.trimEnd()}\n`)
    })
  },
  { name: 'mssp-metrics' },
)
