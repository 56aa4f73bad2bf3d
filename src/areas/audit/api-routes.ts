import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { errorSchema } from '../api/routes.ts'
import * as repo from './repository.ts'
import { crudOf, describeEvent, parseFields } from './actions.ts'
import { utcDay } from './service.ts'

// Tenable's audit log endpoint, `GET /audit-log/v1/events` (Administrator), with its
// `f=field.operator:value` filters. See API.md.

export const DEFAULT_LIMIT = 50
export const MAX_LIMIT = 10_000
export const MAX_FILTERS = 50

/** The filters and their operators, as Tenable documents them for this endpoint. */
export const EVENT_FILTERS: Readonly<Record<string, readonly string[]>> = {
  date: ['gt', 'gte', 'lt', 'lte'],
  action: ['eq', 'match'],
  actor_id: ['eq', 'match'],
  target_id: ['eq', 'match'],
  is_failure: ['eq'],
}

const ISO_TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/i

/**
 * An instant from a filter value: epoch milliseconds, a date (midnight UTC), or an ISO
 * 8601 time (`2021-06-03T20:00:00Z`, `2021-06-03T15:00:00-0500`; without a zone, UTC).
 */
export function parseInstant(value: string): number | null {
  if (/^\d{1,16}$/.test(value)) return Number(value)
  const day = utcDay(value)
  if (day !== null) return day
  const m = ISO_TIME.exec(value)
  if (!m || utcDay(m[1]!) === null) return null
  const [, date, hm, rest, zone] = m
  // Milliseconds at most (JavaScript's precision); a zone without its colon gets one.
  const seconds = rest ? rest.replace(/(\.\d{3})\d+$/, '$1') : ':00'
  const offset = !zone || zone.toUpperCase() === 'Z' ? 'Z' : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone
  const ms = Date.parse(`${date}T${hm}${seconds}${offset}`)
  return Number.isNaN(ms) ? null : ms
}

/** `field.operator:value` (the value may hold colons and dots), checked against EVENT_FILTERS. */
export function parseEventFilter(raw: string): repo.AuditFilter | string {
  const colon = raw.indexOf(':')
  const key = colon < 0 ? raw : raw.slice(0, colon)
  const dot = key.lastIndexOf('.')
  if (colon < 0 || dot < 0) return `The filter "${raw}" must look like field.operator:value, e.g. date.gt:2024-01-31.`
  const field = key.slice(0, dot)
  const op = key.slice(dot + 1)
  const value = raw.slice(colon + 1)
  const ops = EVENT_FILTERS[field]
  if (!ops) return `Unknown filter field "${field}". The filter fields are: ${Object.keys(EVENT_FILTERS).join(', ')}.`
  if (!ops.includes(op)) return `The filter field "${field}" does not allow the operator "${op}"; it allows ${ops.join(', ')}.`
  if (value === '') return `The filter "${raw}" needs a value.`
  if (field === 'date') {
    const ms = parseInstant(value)
    return ms === null ? `"${value}" is not a date: use YYYY-MM-DD, an ISO 8601 time or epoch milliseconds.` : { field: 'date', op: op as repo.AuditFilterOp, value: ms }
  }
  if (field === 'is_failure') {
    const v = value.toLowerCase()
    if (v !== 'true' && v !== 'false') return `"${value}" is not a value of is_failure; use true or false.`
    return { field: 'outcome', op: 'eq', value: v === 'true' ? 'failure' : 'success' }
  }
  if (value.length > 200) return `The value of the filter field "${field}" is longer than 200 characters.`
  return { field: field as repo.AuditFilterField, op: op as repo.AuditFilterOp, value }
}

const querySchema = z.object({
  f: z
    .preprocess((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]), z.array(z.string().max(1000)).max(MAX_FILTERS, `At most ${MAX_FILTERS} filters.`))
    .transform((values, ctx) => {
      const filters: repo.AuditFilter[] = []
      values.forEach((raw, i) => {
        const parsed = parseEventFilter(raw)
        if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed, path: [i] })
        else filters.push(parsed)
      })
      return filters
    })
    .describe(`Filters field.operator:value, repeatable: ${Object.entries(EVENT_FILTERS).map(([f, ops]) => `${f} (${ops.join(', ')})`).join('; ')}. Dates: YYYY-MM-DD, ISO 8601 or epoch milliseconds.`),
  ft: z.enum(['and', 'or']).default('and').describe('How filters combine'),
  limit: z.coerce.number().int().min(1).max(MAX_LIMIT).default(DEFAULT_LIMIT).describe(`How many events, newest first (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT.toLocaleString('en-US')})`),
})

export const apiEventSchema = z.object({
  id: z.string(),
  action: z.string(),
  crud: z.enum(['c', 'r', 'u', 'd']),
  is_failure: z.boolean(),
  received: z.string(),
  description: z.string(),
  actor: z.object({ id: z.string().nullable(), name: z.string().nullable() }),
  is_anonymous: z.boolean(),
  target: z.object({ id: z.string().nullable(), name: z.string().nullable(), type: z.string().nullable() }),
  fields: z.array(z.object({ key: z.string(), value: z.string().nullable() })),
})
export type ApiEvent = z.infer<typeof apiEventSchema>

/** Tenable's event object. The client's IP and the assisting Administrator are fields. */
export function toApiEvent(e: repo.AuditRow): ApiEvent {
  const fields = Object.entries(parseFields(e.fields)).map(([key, v]) => ({ key, value: v === null ? null : String(v) }))
  if (e.ip) fields.push({ key: 'ip', value: e.ip })
  if (e.assisting_name) fields.push({ key: 'assisted_by', value: e.assisting_name })
  return {
    id: e.id,
    action: e.action,
    crud: crudOf(e.action),
    is_failure: e.outcome === 'failure',
    received: new Date(e.created_at).toISOString(),
    description: describeEvent(e),
    actor: { id: e.actor_uuid ?? null, name: e.actor_name },
    is_anonymous: e.actor_user_id === null && e.actor_name === null,
    target: { id: e.target_id, name: e.target_name, type: e.target_type },
    fields,
  }
}

const routes: FastifyPluginAsyncZod = async (app) => {
  app.get('/audit-log/v1/events', {
    config: { access: 'administrator' },
    schema: {
      tags: ['audit-log'],
      summary: 'Audit log events, newest first (Administrator)',
      description: `Sign-ins, changes and their failures. \`f\` filters repeat and combine with \`ft\` (and by default): \`date.gt:2024-01-31\`, \`date.lte:2024-02-01T12:00:00Z\`, \`action.eq:auth.sign_in\`, \`action.match:user.\`, \`actor_id.eq:<user uuid or id>\`, \`target_id.eq:<id>\`, \`is_failure.eq:true\`. \`limit\` defaults to ${DEFAULT_LIMIT} and is at most ${MAX_LIMIT.toLocaleString('en-US')}.`,
      querystring: querySchema,
      response: { 200: z.object({ events: z.array(apiEventSchema) }), 400: errorSchema, 401: errorSchema, 403: errorSchema },
    },
  }, async (request) => {
    const { f, ft, limit } = request.query
    const query = await repo.resolveAuditQuery(app.db, { filters: f, filterType: ft })
    const rows = await repo.findAuditEvents(app.db, query, { limit })
    return { events: rows.map(toApiEvent) }
  })
}

export default routes
