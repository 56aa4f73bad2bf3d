import type { MultipartFile } from '@fastify/multipart'
import { z } from 'zod'
import { LICENSED_APP_CODES } from './licensed-apps.ts'
import { type AccountQuery, type Filter, SORTABLE } from './conditions.ts'
import { EXPIRY_FILTER_DAYS } from './service.ts'

// What the accounts pages accept: the list's query string and the forms' fields. The
// services check the rules; these only give the fields their shapes.

// Missing values take their default directly; bad ones fall back through `catch` (which
// builds an issue first: 30 times slower, so not for every plain page view).
export const listQuerySchema = z.object({
  q: z.string().max(200).catch('').default(''),
  sort: z.enum(SORTABLE).catch('container_name').default('container_name'),
  dir: z.enum(['asc', 'desc']).catch('asc').default('asc'),
  page: z.coerce.number().int().min(1).max(1_000_000).catch(1).default(1),
  app: z.enum(LICENSED_APP_CODES as [string, ...string[]]).optional().catch(undefined),
  region: z.string().max(50).optional().catch(undefined),
  expires: z.enum(['expired', ...EXPIRY_FILTER_DAYS]).optional().catch(undefined),
})
export type ListQuery = z.infer<typeof listQuerySchema>

/** The page's search box and filters as a repository query (the export uses it too). */
export function toAccountQuery(q: ListQuery): AccountQuery {
  const filters: Filter[] = []
  if (q.app) filters.push({ field: 'licensed_apps', op: 'eq', value: q.app })
  if (q.region) filters.push({ field: 'region', op: 'eq', value: q.region })
  if (q.expires === 'expired') filters.push({ field: 'days_to_expiration', op: 'lt', value: '0' })
  else if (q.expires) filters.push({ field: 'days_to_expiration', op: 'lte', value: q.expires })
  return { text: q.q, filters, filterType: 'and', sort: q.sort, dir: q.dir }
}

/** A form's fields; a body that is no form (text/plain arrives as a string) has none. */
function form<T extends z.ZodRawShape>(shape: T) {
  return z.preprocess((body) => (body !== null && typeof body === 'object' && !Array.isArray(body) ? body : {}), z.object(shape))
}
/** A text field: anything but one string (absent, repeated) is blank. */
const text = z.string().catch('')
/** A field passed on as it came, for the service's schema to judge; absent stays absent. */
const asPosted = z.unknown().optional()
/** A field that may be repeated (check boxes), as a list. */
const repeated = <T extends z.ZodType>(item: T) => z.preprocess((v) => (Array.isArray(v) ? v : v ? [v] : []), z.array(item))
const uuidOrNothing = z.unknown().transform((v) => (typeof v === 'string' && z.uuid().safeParse(v).success ? v : null))

/** A route's `:uuid`. */
export const uuidParams = z.object({ uuid: z.string() })

export const saveSearchForm = form({ name: asPosted, query: text })

/** Add Account: every field as the browser posts it (text), the apps as check boxes. */
export const newAccountForm = form({
  container_name: text, custom_name: text, site_id: text, region: text, licensed_assets: text, licensed_assets_limit: text,
  license_expiration: text, instance_url: text, contact_email: text, domains: text, lms_customer_id: text, sso_username: text, notes: text,
  licensed_apps: repeated(z.unknown()).transform((apps) => apps.map(String)),
})

/** Edit Account changes only the fields the form carries: a post without `notes` keeps the notes. */
export const editAccountForm = form({ custom_name: asPosted, notes: asPosted })

/** Assign Logo: the checked accounts (or all=1: every match of the list's query) and the logo. */
export const assignLogoForm = form({
  all: asPosted,
  account: repeated(uuidOrNothing).transform((uuids) => uuids.filter((u): u is string => u !== null)),
  logo: asPosted.transform((v) => String(v ?? '')),
})

/** The import's upload: one CSV file (the first, if several came). */
export const uploadForm = form({
  file: z.preprocess(
    (v) => (Array.isArray(v) ? v[0] : v),
    z.custom<MultipartFile>((v) => typeof (v as MultipartFile | undefined)?.toBuffer === 'function' && Boolean((v as MultipartFile).filename)).optional().catch(undefined),
  ),
})

/** The import's confirmation: the preview's signed rows. */
export const confirmImportForm = form({ payload: z.string().optional().catch(undefined), signature: z.string().optional().catch(undefined) })
