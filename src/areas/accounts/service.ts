import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { Account, User } from '../../db/schema.ts'
import { NotFoundError, ValidationError } from '../../lib/errors.ts'
import { uuid } from '../../lib/tokens.ts'
import { audit } from '../audit/service.ts'
import { LICENSED_APP_CODES, formatApps, parseApps } from './licensed-apps.ts'
import * as repo from './repository.ts'

export const PAGE_SIZE = 50

/** Throws 404 unless the account exists and the user may see it (the same answer either way). */
export async function requireVisibleAccount(request: FastifyRequest, accountUuid: string) {
  const { user } = request.auth!
  const account = z.uuid().safeParse(accountUuid).success ? await repo.findVisibleAccount(request.server.db, user, accountUuid) : undefined
  if (!account) throw new NotFoundError('This account does not exist or is not assigned to you.')
  return account
}

export const editSchema = z.object({
  custom_name: z.string().trim().max(200, 'The custom name can be at most 200 characters.'),
  notes: z.string().max(10_000, 'Notes can be at most 10,000 characters.'),
})

function fieldErrors(error: z.ZodError): Record<string, string> {
  const out: Record<string, string> = {}
  for (const issue of error.issues) out[String(issue.path[0] ?? 'form')] ??= issue.message
  return out
}

/**
 * Saves the custom name and notes in one transaction; a changed custom name is recorded
 * in its history (who, old and new value, when).
 */
export async function editAccount(request: FastifyRequest, account: Account, input: unknown): Promise<Account> {
  const parsed = editSchema.partial().safeParse(input)
  if (!parsed.success) throw new ValidationError(fieldErrors(parsed.error))
  const user = request.auth!.user
  const { db } = request.server
  const changes: { custom_name?: string | null; notes?: string } = {}
  if (parsed.data.custom_name !== undefined) changes.custom_name = parsed.data.custom_name || null
  if (parsed.data.notes !== undefined) changes.notes = parsed.data.notes.replace(/\r\n/g, '\n')
  const now = Date.now()
  const updated = await db.transaction().execute(async (trx) => {
    if (changes.custom_name !== undefined && changes.custom_name !== account.custom_name) {
      await repo.insertNameHistory(trx, {
        uuid: uuid(),
        account_id: account.id,
        user_id: user.id,
        user_name: user.username,
        old_value: account.custom_name,
        new_value: changes.custom_name,
        created_at: now,
      })
    }
    const next = await repo.updateAccount(trx, account, { ...changes, modified_at: now })
    await audit(trx, request, {
      action: 'account.update',
      target: { type: 'account', id: account.uuid, name: account.container_name },
      fields: { custom_name_changed: changes.custom_name !== undefined && changes.custom_name !== account.custom_name, notes_changed: changes.notes !== undefined && changes.notes !== account.notes },
    })
    return next
  })
  return updated
}

const optionalText = (max: number) => z.string().trim().max(max).optional().nullable().transform((v) => v || null)

/** Every field of API.md's account object that a caller may set. */
export const accountInputSchema = z.object({
  container_name: z.string().trim().min(1, 'Enter the customer name.').max(200),
  custom_name: optionalText(200),
  site_id: optionalText(100),
  region: optionalText(50),
  licensed_apps: z.array(z.enum(LICENSED_APP_CODES as [string, ...string[]])).max(3).default([]),
  licensed_assets: z.coerce.number().int().min(0).max(100_000_000).default(0),
  licensed_assets_limit: z.coerce.number().int().min(0).max(100_000_000).default(0),
  license_expiration_date: z.coerce.number().int().min(0).max(8_640_000_000_000).optional().nullable(),
  notes: z.string().max(10_000).default(''),
  lms_customer_id: optionalText(100),
  sso_username: optionalText(254),
  domains: z.array(z.string().trim().toLowerCase().regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/, 'Each domain must look like example.com.')).max(100).default([]),
  instance_url: z.url({ protocol: /^https?$/ }).max(500).optional().nullable().transform((v) => (v ? v.replace(/\/+$/, '') : null)),
  contact_email: z.email().max(254).optional().nullable().transform((v) => v || null),
})
export type AccountInput = z.infer<typeof accountInputSchema>

export async function createAccount(request: FastifyRequest, input: unknown): Promise<Account> {
  const parsed = accountInputSchema.safeParse(input)
  if (!parsed.success) throw new ValidationError(fieldErrors(parsed.error))
  const { db } = request.server
  const now = Date.now()
  const a = parsed.data
  return db.transaction().execute(async (trx) => {
    const account = await repo.insertAccount(trx, {
      ...a,
      uuid: uuid(),
      licensed_apps: formatApps(a.licensed_apps),
      license_expiration_date: a.license_expiration_date ?? null,
      domains: JSON.stringify(a.domains),
      logo_id: null,
      created_by: request.auth!.user.id,
      created_at: now,
      modified_at: now,
    })
    await audit(trx, request, { action: 'account.create', target: { type: 'account', id: account.uuid, name: account.container_name } })
    return account
  })
}

/** Assigns a logo (or none) to many accounts at once, in one transaction. */
export async function assignLogo(request: FastifyRequest, accountUuids: string[], logoId: number | null, logoName: string | null): Promise<number> {
  const { db } = request.server
  const user = request.auth!.user
  return db.transaction().execute(async (trx) => {
    const found = await repo.findVisibleAccountIds(trx, user, [...new Set(accountUuids)])
    if (found.length !== new Set(accountUuids).size) throw new NotFoundError('One or more of the selected accounts do not exist.')
    const n = await repo.setLogoForAccounts(trx, found.map((f) => f.id), logoId, Date.now())
    await audit(trx, request, { action: 'account.assign_logo', target: logoName ? { type: 'logo', id: String(logoId), name: logoName } : undefined, fields: { accounts: n, logo: logoName ?? '(No Logo)' } })
    return n
  })
}

/** Tenable's account object (API.md), times in epoch milliseconds. */
export function toApiAccount(a: repo.AccountRow | (Account & { logo_uuid: string | null })) {
  return {
    uuid: a.uuid,
    container_name: a.container_name,
    custom_name: a.custom_name,
    site_id: a.site_id,
    region: a.region,
    licensed_apps: parseApps(a.licensed_apps),
    licensed_assets: a.licensed_assets,
    licensed_assets_limit: a.licensed_assets_limit,
    license_utilization: a.license_utilization,
    license_expiration_date: a.license_expiration_date,
    logo_uuid: a.logo_uuid,
    notes: a.notes,
    lms_customer_id: a.lms_customer_id,
    sso_username: a.sso_username,
    domains: JSON.parse(a.domains) as string[],
    created: a.created_at,
    modified: a.modified_at,
    instance_url: a.instance_url,
    contact_email: a.contact_email,
  }
}

export type ViewerUser = Pick<User, 'id' | 'role'>
