import { PORTAL_CONTAINER_UUID } from '../../lib/container.ts'
import { Readable } from 'node:stream'
import type { FastifyReply } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { ForbiddenError, HttpError, NotFoundError, ValidationError } from '../../lib/errors.ts'
import { ADMINISTRATOR } from '../../lib/roles.ts'
import { errorSchema } from '../api/routes.ts'
import { findLogoByUuid } from '../logos/repository.ts'
import { LICENSED_APPS, LICENSED_APP_CODES } from './licensed-apps.ts'
import * as repo from './repository.ts'
import type { ApiAccountQuery, Filter, FilterOp } from './conditions.ts'
import { findUserByUuid } from '../users/repository.ts'
import * as service from './service.ts'
import { actorOf } from '../../plugins/session.ts'

// Tenable's MSSP account endpoints (`/mssp/accounts`, `/filters/mssp/accounts`) and the
// portal's extensions (create, patch, replace assignments). See API.md.

export { PORTAL_CONTAINER_UUID }

/** `GET /mssp/accounts` without `limit` returns at most this many accounts (streamed). */
export const MAX_UNPAGED_ACCOUNTS = 100_000
export const MAX_PAGE = 10_000

// --- Filters: one table is both the documentation (GET /filters) and the validation ---

export interface FilterDefinition {
  name: string
  readable_name: string
  operators: readonly FilterOp[]
  control: { type: 'entry' | 'dropdown' | 'datefield'; regex?: string; list?: string[] }
}

const TEXT_OPS = ['eq', 'neq', 'match', 'nmatch'] as const
const NUMBER_OPS = ['eq', 'neq', 'lt', 'gt', 'lte', 'gte'] as const
const TEXT = '^.{0,200}$'
const text = (name: string, readable_name: string): FilterDefinition => ({ name, readable_name, operators: TEXT_OPS, control: { type: 'entry', regex: TEXT } })
const number = (name: string, readable_name: string, regex: string): FilterDefinition => ({ name, readable_name, operators: NUMBER_OPS, control: { type: 'entry', regex } })

export const ACCOUNT_FILTERS: readonly FilterDefinition[] = [
  text('container_name', 'Customer Name'),
  text('custom_name', 'Custom Name'),
  text('site_id', 'Site Identifier'),
  text('region', 'Region'),
  text('notes', 'Notes'),
  { name: 'licensed_apps', readable_name: 'Licensed Apps', operators: TEXT_OPS, control: { type: 'dropdown', list: [...LICENSED_APP_CODES] } },
  number('licensed_assets', 'Licensed Assets', '^[0-9]{1,12}$'),
  number('licensed_assets_limit', 'Licensed Assets Limit', '^[0-9]{1,12}$'),
  number('license_utilization', 'License Utilization (%)', '^[0-9]{1,12}(\\.[0-9]{1,4})?$'),
  // No `neq`: the repository compares it with an exact instant, not the day `eq` matches.
  { ...number('days_to_expiration', 'Days to Expiration', '^-?[0-9]{1,6}$'), operators: ['eq', 'neq', 'lt', 'gt', 'lte', 'gte'] },
  { name: 'logo_uuid', readable_name: 'Logo', operators: ['eq', 'neq'], control: { type: 'entry', regex: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' } },
  text('sso_username', 'SSO Username'),
  text('lms_customer_id', 'LMS Customer ID'),
]
const FILTERS_BY_NAME = new Map(ACCOUNT_FILTERS.map((f) => [f.name, f]))

/** Fields the wildcard `w` may search (`wf`). */
export const WILDCARD_FIELDS = ['container_name', 'custom_name', 'site_id', 'region', 'notes', 'licensed_apps', 'sso_username', 'lms_customer_id'] as const
/** The fields the indexed search text holds (the Accounts page's Search box): the default. */
export const DEFAULT_WILDCARD_FIELDS: readonly string[] = ['container_name', 'custom_name', 'licensed_apps', 'site_id', 'notes']

/** `field:operator:value` (the value may itself hold colons), checked against ACCOUNT_FILTERS. */
export function parseFilter(raw: string): Filter | string {
  const first = raw.indexOf(':')
  const second = first < 0 ? -1 : raw.indexOf(':', first + 1)
  if (second < 0) return `The filter "${raw}" must look like field:operator:value.`
  const field = raw.slice(0, first)
  const op = raw.slice(first + 1, second)
  let value = raw.slice(second + 1)
  const def = FILTERS_BY_NAME.get(field)
  if (!def) return `Unknown filter field "${field}". The filter fields are: ${ACCOUNT_FILTERS.map((f) => f.name).join(', ')}.`
  if (!(def.operators as readonly string[]).includes(op)) return `The filter field "${field}" does not allow the operator "${op}"; it allows ${def.operators.join(', ')}.`
  if (def.control.list) {
    value = value.toLowerCase()
    if (!def.control.list.includes(value)) return `"${value}" is not a value of the filter field "${field}"; use one of ${def.control.list.join(', ')}.`
  } else if (def.control.regex && !new RegExp(def.control.regex).test(value)) {
    return `"${value}" is not a valid value for the filter field "${field}" (expected ${def.control.regex}).`
  }
  if (field === 'logo_uuid') value = value.toLowerCase()
  return { field, op: op as FilterOp, value }
}

// --- Form-friendly inputs: internal tools post plain forms as well as JSON ---

/** An array from JSON, repeated form keys, or one comma-separated string. */
function list(value: unknown): unknown {
  if (typeof value === 'string') return value.split(',').map((s) => s.trim()).filter(Boolean)
  return value
}
const blankToNull = (value: unknown) => (value === '' ? null : value)
const csrfField = z.string().optional().describe('CSRF token, for browser form posts only')

function formFriendly<T extends z.ZodRawShape>(shape: T) {
  const s = shape as unknown as Record<string, z.ZodType>
  return {
    ...shape,
    licensed_apps: z.preprocess(list, s.licensed_apps!).describe('Licensed app codes (vm, was, cs): an array, repeated form keys, or comma-separated'),
    domains: z.preprocess(list, s.domains!).describe('Domain names: an array, repeated form keys, or comma-separated'),
    licensed_assets: z.preprocess(service.numberFromForm, s.licensed_assets!).describe('A whole number (JSON number, or digits in a form)'),
    licensed_assets_limit: z.preprocess(service.numberFromForm, s.licensed_assets_limit!).describe('A whole number (JSON number, or digits in a form)'),
    license_expiration_date: z.preprocess((v) => service.numberFromForm(blankToNull(v)), s.license_expiration_date!).describe('Epoch milliseconds, or null'),
    instance_url: z.preprocess(blankToNull, s.instance_url!),
    contact_email: z.preprocess(blankToNull, s.contact_email!),
    _csrf: csrfField,
  }
}

const createBodySchema = z.object(formFriendly(service.accountInputSchema.shape))
const patchBodySchema = z.object(formFriendly(service.accountPatchSchema.shape))

/** The most accounts one request may name (assigning a logo, replacing a user's assignments). */
const MAX_ACCOUNT_UUIDS = 50_000
const uuidList = (max: number) => z.preprocess(list, z.array(z.uuid()).max(max))
/**
 * The body limit of a route taking MAX_ACCOUNT_UUIDS uuids: about 39 bytes each in JSON
 * (`"…",`), 50 as a form field (`account_uuids=…&`), so 2 to 2.5 MB, over the default 1 MiB;
 * with room for whitespace.
 */
const UUID_LIST_BODY_LIMIT = 4 * 1024 * 1024

// --- Output ---

export const apiAccountSchema = z.object({
  uuid: z.string(),
  container_name: z.string(),
  custom_name: z.string().nullable(),
  site_id: z.string().nullable(),
  region: z.string().nullable(),
  licensed_apps: z.array(z.string()),
  licensed_assets: z.number(),
  licensed_assets_limit: z.number(),
  license_utilization: z.number(),
  license_expiration_date: z.number().nullable(),
  logo_uuid: z.string().nullable(),
  notes: z.string(),
  lms_customer_id: z.string().nullable(),
  sso_username: z.string().nullable(),
  domains: z.array(z.string()),
  created: z.number(),
  modified: z.number(),
  instance_url: z.string().nullable(),
  contact_email: z.string().nullable(),
})

const childContainersSchema = z.object({ parent_uuid: z.string(), account_uuids: z.array(z.string()) })
const historySchema = z.object({
  history: z.array(z.object({ uuid: z.string(), child_container_uuid: z.string(), user_name: z.string(), old_value: z.string().nullable(), updated_value: z.string().nullable(), created: z.number() })),
})
const badRequest = { 400: errorSchema, 401: errorSchema }
const adminErrors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema }

const listQuerySchema = z.object({
  f: z
    .preprocess((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]), z.array(z.string().max(1000)).max(50, 'At most 50 filters.'))
    .transform((values, ctx) => {
      const filters: Filter[] = []
      values.forEach((raw, i) => {
        const parsed = parseFilter(raw)
        if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed, path: [i] })
        else filters.push(parsed)
      })
      return filters
    })
    .describe('Filters field:operator:value, repeatable (see GET /filters/mssp/accounts)'),
  ft: z.enum(['and', 'or']).default('and').describe('How filters combine'),
  w: z.string().max(200).optional().describe('Wildcard text'),
  wf: z.preprocess((v) => (v === undefined ? undefined : (Array.isArray(v) ? v : [v]).flatMap((s) => list(s) as string[])), z.array(z.enum(WILDCARD_FIELDS)).optional()).describe('Comma-separated fields the wildcard searches'),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).optional().describe(`Page size, at most ${MAX_PAGE}; without it every visible account (at most ${MAX_UNPAGED_ACCOUNTS})`),
  offset: z.coerce.number().int().min(0).max(1_000_000_000).default(0),
})

/** The wildcard: the indexed text search over the default fields, or `match` filters OR-ed over the chosen ones. */
export function wildcardQuery(w: string | undefined, wf: readonly string[] | undefined): Pick<ApiAccountQuery, 'text' | 'anyOf'> {
  const value = (w ?? '').trim()
  if (!value) return {}
  if (!wf?.length || wf.every((f) => DEFAULT_WILDCARD_FIELDS.includes(f))) return { text: value }
  const anyOf: Filter[] = []
  for (const field of new Set(wf)) {
    if (field === 'licensed_apps') {
      // Apps are stored as codes: a code or a name containing the text, as the Search box does.
      const lower = value.toLowerCase()
      const codes = LICENSED_APPS.filter((a) => a.code.includes(lower) || a.label.toLowerCase().includes(lower)).map((a) => a.code)
      for (const code of codes.length ? codes : [lower]) anyOf.push({ field, op: 'eq', value: code })
    } else anyOf.push({ field, op: 'match', value })
  }
  return { anyOf }
}

/** A JSON body streamed in chunks of about 64 KB: `{"accounts":[...]}`. */
async function* accountsJson(first: IteratorResult<repo.AccountRow>, rest: AsyncGenerator<repo.AccountRow>): AsyncGenerator<string> {
  let chunk = '{"accounts":['
  if (!first.done) {
    chunk += JSON.stringify(service.toApiAccount(first.value))
    for await (const row of rest) {
      chunk += `,${JSON.stringify(service.toApiAccount(row))}`
      if (chunk.length >= 65_536) {
        yield chunk
        chunk = ''
      }
    }
  }
  yield `${chunk}]}`
}

function sendBadRequest(reply: FastifyReply, err: ValidationError) {
  const errors = Object.entries(err.fieldErrors).map(([field, message]) => ({ path: `/${field}`, message }))
  return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: errors.map((e) => `${e.path.slice(1)}: ${e.message}`).join('; ') || err.message, errors })
}

function historyOf(accountUuid: string, rows: Awaited<ReturnType<typeof repo.nameHistory>>) {
  return rows.map((h) => ({ uuid: h.uuid, child_container_uuid: accountUuid, user_name: h.user_name, old_value: h.old_value, updated_value: h.new_value, created: h.created_at }))
}

const routes: FastifyPluginAsyncZod = async (app) => {
  app.get('/filters/mssp/accounts', {
    config: { access: 'user' },
    schema: {
      tags: ['accounts'],
      summary: 'The filters GET /mssp/accounts accepts',
      response: {
        200: z.object({
          wildcard_fields: z.array(z.string()),
          filters: z.array(z.object({
            name: z.string(),
            readable_name: z.string(),
            operators: z.array(z.string()),
            control: z.object({ type: z.enum(['entry', 'dropdown', 'datefield']), regex: z.string().optional(), list: z.array(z.string()).optional() }),
          })),
        }),
        401: errorSchema,
      },
    },
  }, async () => ({ wildcard_fields: [...WILDCARD_FIELDS], filters: ACCOUNT_FILTERS.map((f) => ({ ...f, operators: [...f.operators] })) }))

  app.get('/mssp/accounts', {
    config: { access: 'user' },
    schema: {
      tags: ['accounts'],
      summary: 'List the accounts the caller may see',
      description: `Administrators see every account, other roles their assigned accounts, in creation order. Without \`limit\` the response holds every match, streamed, up to ${MAX_UNPAGED_ACCOUNTS.toLocaleString('en-US')} accounts (page with \`limit\` and \`offset\` beyond that); \`limit\` is at most ${MAX_PAGE.toLocaleString('en-US')}. \`w\` searches the indexed search text (customer name, custom name, licensed apps, site identifier, notes) unless \`wf\` names other fields, when it matches any of those fields.`,
      querystring: listQuerySchema,
      response: { 200: z.object({ accounts: z.array(apiAccountSchema) }), ...badRequest },
    },
  }, async (request, reply) => {
    const { f, ft, w, wf, limit, offset } = request.query
    const query: ApiAccountQuery = { filters: f, filterType: ft, ...wildcardQuery(w, wf) }
    const rows = repo.iterateApiAccounts(app.db, app.dialect, actorOf(request).user, query, { offset, limit: limit ?? MAX_UNPAGED_ACCOUNTS })
    // The first batch is read before the response starts, so a failure is still a proper error.
    const first = await rows.next()
    return reply.type('application/json; charset=utf-8').send(Readable.from(accountsJson(first, rows)) as never)
  })

  app.post('/mssp/accounts', {
    config: { access: 'administrator' },
    schema: { tags: ['accounts'], summary: 'Create an account (portal extension)', body: createBodySchema, response: { 200: apiAccountSchema, ...adminErrors } },
  }, async (request, reply) => {
    const { _csrf, ...input } = request.body
    try {
      const account = await service.createAccount(app.db, actorOf(request), input)
      return service.toApiAccount({ ...account, logo_uuid: null })
    } catch (err) {
      if (err instanceof ValidationError) return sendBadRequest(reply, err)
      throw err
    }
  })

  app.get('/mssp/accounts/:account_uuid', {
    config: { access: 'user' },
    schema: { tags: ['accounts'], summary: 'One account (404 when missing or not visible)', params: z.object({ account_uuid: z.string() }), response: { 200: apiAccountSchema, 401: errorSchema, 404: errorSchema } },
  }, async (request) => service.toApiAccount(await service.requireVisibleAccount(app.db, actorOf(request), request.params.account_uuid)))

  app.patch('/mssp/accounts/:account_uuid', {
    config: { access: 'administrator' },
    schema: {
      tags: ['accounts'],
      summary: 'Change an account (portal extension)',
      description: 'Any subset of the fields of POST /mssp/accounts; a changed custom name is recorded in its history. Validated first, then written in one transaction.',
      params: z.object({ account_uuid: z.string() }),
      body: patchBodySchema,
      response: { 200: apiAccountSchema, ...adminErrors },
    },
  }, async (request, reply) => {
    const account = await service.requireVisibleAccount(app.db, actorOf(request), request.params.account_uuid)
    const { _csrf, ...input } = request.body
    const changes = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined))
    if (Object.keys(changes).length === 0) throw new HttpError(400, `Nothing to change: send any of ${Object.keys(service.accountPatchSchema.shape).join(', ')}.`)
    try {
      await service.patchAccount(app.db, actorOf(request), account, changes)
    } catch (err) {
      if (err instanceof ValidationError) return sendBadRequest(reply, err)
      throw err
    }
    return service.toApiAccount(await service.requireVisibleAccount(app.db, actorOf(request), account.uuid))
  })

  app.put('/mssp/accounts/logos', {
    config: { access: 'administrator' },
    bodyLimit: UUID_LIST_BODY_LIMIT,
    schema: {
      tags: ['accounts'],
      summary: 'Assign a logo to accounts (logo_uuid null removes it)',
      body: z.object({
        logo_uuid: z.preprocess((v) => (v === '' || v === 'null' ? null : v), z.uuid().nullable()),
        account_uuids: uuidList(MAX_ACCOUNT_UUIDS).refine((a) => a.length > 0, 'Name at least one account.'),
        _csrf: csrfField,
      }),
      response: { 200: z.object({ updated: z.number() }), ...adminErrors },
    },
  }, async (request) => {
    const { logo_uuid, account_uuids } = request.body
    const logo = logo_uuid ? await findLogoByUuid(app.db, logo_uuid) : null
    if (logo_uuid && !logo) throw new NotFoundError('This logo does not exist.')
    const updated = await service.assignLogo(app, actorOf(request), account_uuids, logo ?? null)
    return { updated }
  })

  app.get('/mssp/accounts/childContainers/:user_uuid', {
    config: { access: 'user' },
    schema: {
      tags: ['accounts'],
      summary: "A user's assigned accounts (Administrator, or the user themself)",
      params: z.object({ user_uuid: z.string() }),
      response: { 200: childContainersSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema },
    },
  }, async (request) => {
    const caller = actorOf(request).user
    const { user_uuid } = request.params
    if (caller.role !== ADMINISTRATOR && caller.uuid !== user_uuid) throw new ForbiddenError("Only Administrators may see another user's accounts.")
    const target = z.uuid().safeParse(user_uuid).success ? await findUserByUuid(app.db, user_uuid) : undefined
    if (!target) throw new NotFoundError('This user does not exist.')
    const rows = await repo.assignedAccountUuids(app.db, target.id)
    return { parent_uuid: PORTAL_CONTAINER_UUID, account_uuids: rows.map((r) => r.uuid) }
  })

  app.put('/mssp/accounts/childContainers/:user_uuid', {
    config: { access: 'administrator' },
    bodyLimit: UUID_LIST_BODY_LIMIT,
    schema: {
      tags: ['accounts'],
      summary: "Replace a user's assigned accounts (portal extension)",
      description: 'Only users who are not Administrators have assignments (409 for an Administrator). Unknown account uuids change nothing (404).',
      params: z.object({ user_uuid: z.string() }),
      body: z.object({ account_uuids: uuidList(MAX_ACCOUNT_UUIDS).default([]), _csrf: csrfField }),
      response: { 200: childContainersSchema, ...adminErrors, 409: errorSchema },
    },
  }, async (request) => {
    const { user_uuid } = request.params
    const target = z.uuid().safeParse(user_uuid).success ? await findUserByUuid(app.db, user_uuid) : undefined
    if (!target) throw new NotFoundError('This user does not exist.')
    await service.replaceUserAssignments(app.db, actorOf(request), target, request.body.account_uuids)
    const rows = await repo.assignedAccountUuids(app.db, target.id)
    return { parent_uuid: PORTAL_CONTAINER_UUID, account_uuids: rows.map((r) => r.uuid) }
  })

  app.get('/mssp/accounts/childContainers/:account_uuid/history', {
    config: { access: 'user' },
    schema: {
      tags: ['accounts'],
      summary: "An account's custom name changes, newest first",
      params: z.object({ account_uuid: z.string() }),
      response: { 200: historySchema, 401: errorSchema, 404: errorSchema },
    },
  }, async (request) => {
    const account = await service.requireVisibleAccount(app.db, actorOf(request), request.params.account_uuid)
    return { history: historyOf(account.uuid, await repo.nameHistory(app.db, account.id)) }
  })
}

export default routes
