import type { Kysely } from 'kysely'
import { z } from 'zod'
import type { Account, Database, User } from '../../db/schema.ts'
import type { Actor } from '../../lib/actor.ts'
import type { Portal } from '../../types.ts'
import { ConflictError, NotFoundError, ValidationError, fieldErrors } from '../../lib/errors.ts'
import { ADMINISTRATOR } from '../../lib/roles.ts'
import { uuid } from '../../lib/tokens.ts'
import { audit } from '../audit/service.ts'
import { LICENSED_APP_CODES, formatApps, parseApps } from './licensed-apps.ts'
import * as repo from './repository.ts'
import type { AccountQuery } from './conditions.ts'
import { auditEventExists } from '../audit/repository.ts'

type Db = Kysely<Database>
/** What the services that search need of the portal: the database and its dialect. */
type Data = Pick<Portal, 'db' | 'dialect'>

export const PAGE_SIZE = 50
/** The Accounts page counts matches up to this many; beyond it says "1,000+". */
export const COUNT_CAP = 1000
/**
 * Where the Accounts page marks a row: a license utilization (percent) from `utilizationNear`
 * as near its limit and above `utilizationOver` as over it; an expiry within `expiringDays`.
 */
export const ROW_MARKS = { utilizationNear: 90, utilizationOver: 100, expiringDays: 30 } as const
/** The License Expiration filter's choices besides Expired: within this many days. */
export const EXPIRY_FILTER_DAYS = ['30', '90'] as const

/** Throws 404 unless the account exists and the user may see it (the same answer either way). */
export async function requireVisibleAccount(db: Db, actor: Actor, accountUuid: string) {
  const account = z.uuid().safeParse(accountUuid).success ? await repo.findVisibleAccount(db, actor.user, accountUuid) : undefined
  if (!account) throw new NotFoundError('This account does not exist or is not assigned to you.')
  return account
}

export const editSchema = z.object({
  custom_name: z.string().trim().max(200, 'The custom name can be at most 200 characters.'),
  notes: z.string().max(10_000, 'Notes can be at most 10,000 characters.'),
})

type AccountChanges = Partial<Omit<Account, 'id' | 'uuid' | 'search_text' | 'license_utilization'>>

/** The Edit Account form's two fields as stored: a blank custom name is none, line breaks are LF. */
function editedFields(input: { custom_name?: string | null; notes?: string }): AccountChanges {
  const changes: AccountChanges = {}
  if (input.custom_name !== undefined) changes.custom_name = input.custom_name || null
  if (input.notes !== undefined) changes.notes = input.notes.replace(/\r\n/g, '\n')
  return changes
}

/**
 * Writes an account's changes in one transaction: a changed custom name into its history
 * (who, old and new value, when), the row, and one audit event (`fields` first in it).
 */
async function writeChanges(db: Db, actor: Actor, account: Account, changes: AccountChanges, fields: Record<string, string> = {}): Promise<Account> {
  const nameChanged = changes.custom_name !== undefined && changes.custom_name !== account.custom_name
  const now = Date.now()
  return db.transaction().execute(async (trx) => {
    if (nameChanged) {
      await repo.insertNameHistory(trx, {
        uuid: uuid(),
        account_id: account.id,
        user_id: actor.user.id,
        user_name: actor.user.username,
        old_value: account.custom_name,
        new_value: changes.custom_name ?? null,
        created_at: now,
      })
    }
    const next = await repo.updateAccount(trx, account, { ...changes, modified_at: now })
    await audit(trx, actor, {
      action: 'account.update',
      target: { type: 'account', id: account.uuid, name: account.container_name },
      fields: { ...fields, custom_name_changed: nameChanged, notes_changed: changes.notes !== undefined && changes.notes !== account.notes },
    })
    return next
  })
}

/** Saves the custom name and notes (either may be absent) as writeChanges does. */
export async function editAccount(db: Db, actor: Actor, account: Account, input: unknown): Promise<Account> {
  const parsed = editSchema.partial().safeParse(input)
  if (!parsed.success) throw new ValidationError(fieldErrors(parsed.error))
  // A form that carries neither field (or a body that is no form) changes nothing.
  if (parsed.data.custom_name === undefined && parsed.data.notes === undefined) return account
  return writeChanges(db, actor, account, editedFields(parsed.data))
}

// Numbers are numbers: no coercion, which would store true as 1 and null or [] as 0. Forms
// carry text, so their readers turn digits into numbers first (numberFromForm).
const wholeNumber = z.number({ error: 'Enter a whole number, 0 or more.' }).int('Enter a whole number, 0 or more.').min(0, 'Enter a whole number, 0 or more.').max(100_000_000)

/** A form's text as a number when it is one (digits only); blank is absent; anything else as it came, for the schema to refuse. */
export function numberFromForm(value: unknown): unknown {
  if (typeof value !== 'string') return value
  const text = value.trim()
  if (text === '') return undefined
  return /^\d{1,16}$/.test(text) ? Number(text) : value
}

const optionalText = (max: number) => z.string().trim().max(max).optional().nullable().transform((v) => v || null)

/** Every field of API.md's account object that a caller may set. */
export const accountInputSchema = z.object({
  container_name: z.string().trim().min(1, 'Enter the customer name.').max(200),
  custom_name: optionalText(200),
  site_id: optionalText(100),
  region: optionalText(50),
  licensed_apps: z.array(z.enum(LICENSED_APP_CODES as [string, ...string[]])).max(3).default([]),
  licensed_assets: wholeNumber.default(0),
  licensed_assets_limit: wholeNumber.default(0),
  license_expiration_date: z.number({ error: 'Enter the time as epoch milliseconds.' }).int().min(0).max(8_640_000_000_000).optional().nullable(),
  notes: z.string().max(10_000).default(''),
  lms_customer_id: optionalText(100),
  sso_username: optionalText(254),
  domains: z.array(z.string().trim().toLowerCase().regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/, 'Each domain must look like example.com.')).max(100).default([]),
  instance_url: z.url({ protocol: /^https?$/ }).max(500).optional().nullable().transform((v) => (v ? v.replace(/\/+$/, '') : null)),
  contact_email: z.email().max(254).optional().nullable().transform((v) => v || null),
})
export type AccountInput = z.infer<typeof accountInputSchema>

export async function createAccount(db: Db, actor: Actor, input: unknown): Promise<Account> {
  const parsed = accountInputSchema.safeParse(input)
  if (!parsed.success) throw new ValidationError(fieldErrors(parsed.error))
  return db.transaction().execute(async (trx) => {
    const account = await repo.insertAccount(trx, toNewAccount(parsed.data, actor.user.id, Date.now()))
    await audit(trx, actor, { action: 'account.create', target: { type: 'account', id: account.uuid, name: account.container_name } })
    return account
  })
}

/**
 * Assigns a logo (or none) in one transaction to the accounts named by uuid, or to every
 * account matching a search ("select all N matching").
 */
export async function assignLogo({ db, dialect }: Data, actor: Actor, accounts: string[] | AccountQuery, logo: { id: number; name: string } | null): Promise<number> {
  const named = Array.isArray(accounts)
  return db.transaction().execute(async (trx) => {
    let ids: number[]
    if (named) {
      const found = await repo.findVisibleAccountIds(trx, actor.user, [...new Set(accounts)])
      if (found.length !== new Set(accounts).size) throw new NotFoundError('One or more of the selected accounts do not exist.')
      ids = found.map((f) => f.id)
    } else ids = (await repo.matchingAccountIds(trx, dialect, actor.user, accounts)).map((r) => r.id)
    const n = await repo.setLogoForAccounts(trx, ids, logo?.id ?? null, Date.now())
    const fields = { accounts: n, logo: logo?.name ?? '(No Logo)', ...(named ? {} : { all_matching: true }) }
    await audit(trx, actor, { action: 'account.assign_logo', target: logo ? { type: 'logo', id: String(logo.id), name: logo.name } : undefined, fields })
    return n
  })
}

/** The accounts a search finds, in batches for the CSV export: audited with the search that chose them. */
export async function exportAccounts({ db, dialect }: Data, actor: Actor, query: AccountQuery, searched: Record<string, string>) {
  const batches = repo.iterateAccountBatches(db, dialect, actor.user, query)
  await audit(db, actor, { action: 'account.export', fields: searched })
  return batches
}

/** Tenable's account object (API.md), times in epoch milliseconds. */
export function toApiAccount(a: repo.ExportedAccount | repo.AccountRow | (Account & { logo_uuid: string | null })) {
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
    domains: a.domains === '[]' ? [] : (JSON.parse(a.domains) as string[]),
    created: a.created_at,
    modified: a.modified_at,
    instance_url: a.instance_url,
    contact_email: a.contact_email,
  }
}

/** A schema's inner type without its default, optional: absent keys stay absent (PATCH). */
function optionalWithoutDefault(schema: z.ZodType): z.ZodType {
  return (schema instanceof z.ZodDefault ? (schema.unwrap() as z.ZodType) : schema).optional()
}

/**
 * PATCH input: any subset of accountInputSchema's fields; `custom_name` and `notes` follow
 * the Edit Account form's rules (editSchema), and `custom_name: null` or "" clears it.
 */
export const accountPatchSchema = z.object({
  ...(Object.fromEntries(
    Object.entries(accountInputSchema.omit({ custom_name: true, notes: true }).shape).map(([key, schema]) => [key, optionalWithoutDefault(schema as z.ZodType)]),
  ) as { [K in Exclude<keyof typeof accountInputSchema.shape, 'custom_name' | 'notes'>]: z.ZodOptional<(typeof accountInputSchema.shape)[K]> }),
  custom_name: editSchema.shape.custom_name.nullable().optional(),
  notes: editSchema.shape.notes.optional(),
})
export type AccountPatch = z.infer<typeof accountPatchSchema>

const PATCH_COLUMNS = ['container_name', 'site_id', 'region', 'licensed_assets', 'licensed_assets_limit', 'license_expiration_date', 'lms_customer_id', 'sso_username', 'instance_url', 'contact_email'] as const

/**
 * Changes any of an account's fields as writeChanges does, the custom name and notes as
 * editAccount does. Everything is validated before anything is written.
 */
export async function patchAccount(db: Db, actor: Actor, account: Account, input: unknown): Promise<Account> {
  const parsed = accountPatchSchema.safeParse(input)
  if (!parsed.success) throw new ValidationError(fieldErrors(parsed.error))
  const p = parsed.data
  const changes: AccountChanges = {}
  for (const key of PATCH_COLUMNS) if (p[key] !== undefined) (changes as Record<string, unknown>)[key] = p[key] ?? null
  if (p.licensed_apps !== undefined) changes.licensed_apps = formatApps(p.licensed_apps)
  if (p.domains !== undefined) changes.domains = JSON.stringify(p.domains)
  Object.assign(changes, editedFields(p))
  const changed = Object.keys(changes).filter((k) => (changes as Record<string, unknown>)[k] !== (account as unknown as Record<string, unknown>)[k])
  return writeChanges(db, actor, account, changes, { changed: changed.join(',') })
}

/**
 * Replaces a non-administrator user's assigned accounts in one transaction (audited).
 * Administrators see every account and have no assignments (409); unknown account uuids
 * change nothing (404).
 */
export async function replaceUserAssignments(db: Db, actor: Actor, target: Pick<User, 'id' | 'uuid' | 'username' | 'role'>, accountUuids: string[]): Promise<string[]> {
  if (target.role === ADMINISTRATOR) throw new ConflictError('Administrators see every account and have no account assignments. Change the role first.')
  const wanted = [...new Set(accountUuids.map((u) => u.toLowerCase()))]
  return db.transaction().execute(async (trx) => {
    const found = await repo.findVisibleAccountIds(trx, actor.user, wanted)
    if (found.length !== wanted.length) {
      const known = new Set(found.map((f) => f.uuid))
      const missing = wanted.filter((u) => !known.has(u))
      throw new NotFoundError(`${missing.length === 1 ? 'This account does' : `${missing.length} accounts do`} not exist: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`)
    }
    await repo.replaceAssignments(trx, target.id, found.map((f) => f.id), Date.now())
    await audit(trx, actor, { action: 'user.assign_accounts', target: { type: 'user', id: target.uuid, name: target.username }, fields: { accounts: found.length } })
    return found.map((f) => f.uuid)
  })
}

/** An accountInputSchema result as a row to insert. */
export function toNewAccount(a: AccountInput, createdBy: number, now: number) {
  return {
    ...a,
    uuid: uuid(),
    licensed_apps: formatApps(a.licensed_apps),
    license_expiration_date: a.license_expiration_date ?? null,
    domains: JSON.stringify(a.domains),
    logo_id: null,
    created_by: createdBy,
    created_at: now,
    modified_at: now,
  }
}

/**
 * Writes validated import rows all-or-nothing in one transaction with one audit event
 * whose target is the import's id: a confirmation replayed (a double click, a resubmitted
 * form) finds that event and is refused with 409.
 */
export async function importAccounts({ db, dialect }: Data, actor: Actor, rows: AccountInput[], importId: string, issuedAt: number): Promise<number> {
  const { user } = actor
  const now = Date.now()
  return db.transaction().execute(async (trx) => {
    await repo.lockUserRow(trx, dialect, user.id)
    if (await auditEventExists(trx, 'account.import', importId, issuedAt)) throw new ConflictError('These accounts have already been imported.')
    const n = await repo.insertAccounts(trx, rows.map((r) => toNewAccount(r, user.id, now)))
    await audit(trx, actor, { action: 'account.import', target: { type: 'import', id: importId, name: `${n} accounts` }, fields: { accounts: n } })
    return n
  })
}
