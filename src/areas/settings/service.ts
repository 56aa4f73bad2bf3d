import { domainToASCII } from 'node:url'
import type { Kysely } from 'kysely'
import { z } from 'zod'
import type { Database } from '../../db/schema.ts'
import type { Actor } from '../../lib/actor.ts'
import { ConflictError, ValidationError } from '../../lib/errors.ts'
import { sha256 } from '../../lib/tokens.ts'
import { audit } from '../audit/service.ts'
import { resourceLinks as DEFAULT_RESOURCE_LINKS } from '../resources/links.ts'
import * as domains from './domains-repository.ts'
import { KEY_RESOURCE_LINKS, deleteLinksRow, readLinksRow, swapLinksRow } from './links-repository.ts'
import { KEY_REQUIRE_2FA, readRequire2fa, writeRequire2fa } from './require-2fa-repository.ts'

export { countUsersWithout2fa } from './require-2fa-repository.ts'
export { countUsersAtDomain } from './domains-repository.ts'

type Db = Kysely<Database>

// Portal-wide settings (the settings table). Read on every guarded request, so kept in
// memory for a few seconds: another process's change applies within SETTINGS_TTL_MS.
export const SETTINGS_TTL_MS = 5_000

export interface ResourceLink {
  label: string
  href: string
}

export interface Settings {
  require2fa: boolean
  /** The Resource Center menu's links (the defaults until an Administrator changes them). */
  resourceLinks: readonly ResourceLink[]
}

const DEFAULT_LINKS: readonly ResourceLink[] = Object.freeze(DEFAULT_RESOURCE_LINKS.map((l) => Object.freeze({ label: l.label, href: l.href })))
const cache = new WeakMap<Db, { at: number; settings: Settings }>()

export async function getSettings(db: Db): Promise<Settings> {
  const hit = cache.get(db)
  if (hit && Date.now() - hit.at < SETTINGS_TTL_MS) return hit.settings
  const [require2fa, links] = await Promise.all([readRequire2fa(db), readLinksRow(db)])
  const settings: Settings = Object.freeze({ require2fa, resourceLinks: (links === null ? null : parseStoredLinks(links)) ?? DEFAULT_LINKS })
  cache.set(db, { at: Date.now(), settings })
  return settings
}

/** Forgets this process's cached settings (the next read goes to the database). */
export function clearSettingsCache(db: Db): void {
  cache.delete(db)
}

export async function setRequire2fa(db: Db, value: boolean): Promise<void> {
  await writeRequire2fa(db, value)
  cache.delete(db)
}

/**
 * Turns the require-2FA switch on or off for an Administrator's request, audited.
 * Returns false when it already had that value (nothing written, nothing audited).
 */
export async function changeRequire2fa(db: Db, actor: Actor, value: boolean): Promise<boolean> {
  const previous = await readRequire2fa(db)
  if (previous === value) return false
  await db.transaction().execute(async (trx) => {
    await writeRequire2fa(trx, value)
    await audit(trx, actor, { action: 'settings.require_2fa', target: { type: 'setting', id: KEY_REQUIRE_2FA }, fields: { value, previous } })
  })
  cache.delete(db)
  return true
}

// ---------------------------------------------------------------------------------------
// Approved domains: usernames are name@domain, and a domain must be approved to be used.

export interface DomainRow {
  domain: string
  created_at: number
  users: number
}

/** Thrown when a rule refuses a change (in use, last domain, duplicate): a 422 with the reason. */
export class SettingsRuleError extends ValidationError {
  constructor(field: string, message: string) {
    super({ [field]: message }, message)
  }
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
/** The last label as usernames accept it (see auth/service.ts USERNAME_PATTERN). */
const TOP_LABEL = /^[a-z]{2,63}$/

/**
 * A domain as typed, checked and lower-cased: a DNS name like example.com whose users'
 * usernames (name@domain) the portal accepts. Throws ValidationError on the `domain` field.
 */
export function parseDomain(input: unknown): string {
  const fail = (message: string): never => {
    throw new SettingsRuleError('domain', message)
  }
  let domain = (typeof input === 'string' ? input : '').trim().toLowerCase()
  if (domain.endsWith('.')) domain = domain.slice(0, -1)
  if (!domain) fail('Enter a domain, like example.com.')
  if (domain.includes('@')) fail('Enter the domain only, without a name or @: like example.com.')
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(domain) || domain.includes('/')) fail('Enter the domain only, without https:// or a path: like example.com.')
  if (/[^\x21-\x7e]/.test(domain)) {
    if (/\s/.test(domain)) fail('A domain cannot contain spaces.')
    const ascii = domainToASCII(domain)
    fail(ascii ? `Enter an international domain in its ASCII form: ${ascii}.` : 'Use only the letters a-z, digits, hyphens and dots.')
  }
  if (domain.length > 253) fail('A domain can be at most 253 characters.')
  const labels = domain.split('.')
  if (labels.length < 2) fail('Enter a full domain with a dot, like example.com.')
  if (labels.every((l) => /^\d+$/.test(l))) fail('Enter a domain name, not an IP address.')
  for (const label of labels) {
    if (!label) fail('A domain cannot have two dots in a row, or start with a dot.')
    if (label.length > 63) fail('Each part of a domain between dots can be at most 63 characters.')
    if (!LABEL.test(label)) fail('Use only the letters a-z, digits, hyphens and dots; each part between dots starts and ends with a letter or digit.')
  }
  if (!TOP_LABEL.test(labels.at(-1)!)) fail('The domain must end in a top-level domain of letters, like .com or .org.')
  return domain
}

export async function listDomains(db: Db): Promise<DomainRow[]> {
  const rows = await domains.listDomainRows(db)
  const out: DomainRow[] = []
  for (const r of rows) out.push({ domain: r.domain, created_at: Number(r.created_at), users: await domains.countUsersAtDomain(db, r.domain) })
  return out
}

/** Who changes a domain: a signed-in Administrator, or the command line. */
export type ChangedBy = Actor | 'cli'

function auditAs(db: Db, by: ChangedBy, input: Parameters<typeof audit>[2]) {
  return by === 'cli' ? audit(db, null, { ...input, actor: null, fields: { ...input.fields, via: 'cli' } }) : audit(db, by, input)
}

/** Approves a domain; a duplicate is refused. Returns the stored (lower-cased) domain. */
export async function addDomain(db: Db, by: ChangedBy, input: unknown): Promise<string> {
  const domain = parseDomain(input)
  const duplicate = () => new SettingsRuleError('domain', `${domain} is already an approved domain.`)
  if (await domains.domainExists(db, domain)) throw duplicate()
  await db.transaction().execute(async (trx) => {
    if (!(await domains.insertDomain(trx, domain))) throw duplicate()
    await auditAs(trx, by, { action: 'settings.domain_add', target: { type: 'approved_domain', id: domain, name: domain } })
  })
  return domain
}

/**
 * Removes an approved domain, unless a user's username is at it (that user could no longer
 * be edited or recreated) or it is the last one.
 */
export async function removeDomain(db: Db, by: ChangedBy, input: unknown): Promise<string> {
  const domain = (typeof input === 'string' ? input : '').trim().toLowerCase()
  if (!domain) throw new SettingsRuleError('remove', 'Choose a domain to remove.')
  await db.transaction().execute(async (trx) => {
    if (!(await domains.deleteUnusedDomain(trx, domain))) {
      if (!(await domains.domainExists(trx, domain))) throw new SettingsRuleError('remove', `${domain} is not an approved domain.`)
      const users = await domains.countUsersAtDomain(trx, domain)
      if (users > 0) {
        throw new SettingsRuleError('remove', `${domain} cannot be removed: ${users} ${users === 1 ? 'user has a username' : 'users have usernames'} at this domain. Change or delete ${users === 1 ? 'that user' : 'those users'} first.`)
      }
      throw new SettingsRuleError('remove', `${domain} cannot be removed: it is the last approved domain, and every username needs one. Add another domain first.`)
    }
    await auditAs(trx, by, { action: 'settings.domain_remove', target: { type: 'approved_domain', id: domain, name: domain } })
  })
  return domain
}

// ---------------------------------------------------------------------------------------
// Resource Center links (the defaults until an Administrator changes them).

export const MAX_RESOURCE_LINKS = 20
export const MAX_LABEL_LENGTH = 100
export const MAX_HREF_LENGTH = 2000

/**
 * A link target the portal may show: https://… anywhere, or a path on the portal itself.
 * Returns the href to store, or a message saying what is wrong.
 */
export function checkHref(input: string): { href: string } | { error: string } {
  const href = input.trim()
  if (!href) return { error: 'Enter the URL: https://… or a path on the portal starting with /.' }
  if (href.length > MAX_HREF_LENGTH) return { error: `The URL can be at most ${MAX_HREF_LENGTH} characters.` }
  if (/[\s\u0000-\u001f\u007f]/.test(href)) return { error: 'The URL cannot contain spaces or control characters.' }
  if (href.startsWith('//') || href.startsWith('/\\')) return { error: 'A path on the portal starts with a single /. For another site, enter its full https:// address.' }
  if (href.startsWith('/')) {
    if (/[\\"'<>`]/.test(href) || /[^\x21-\x7e]/.test(href)) return { error: 'The path contains a character a link cannot carry (\\ " \' < > or `).' }
    return { href }
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(href)?.[1]?.toLowerCase()
  if (scheme === 'http') return { error: 'Use an https:// address: plain http:// links are not allowed.' }
  if (scheme && scheme !== 'https') return { error: 'Only https:// addresses and paths on the portal (starting with /) are allowed.' }
  if (!scheme) return { error: 'Enter a full address starting with https://, or a path on the portal starting with /.' }
  let url: URL
  try {
    url = new URL(href)
  } catch {
    return { error: 'This is not a valid https:// address.' }
  }
  if (!url.hostname || !/^https:\/\//i.test(href)) return { error: 'This is not a valid https:// address.' }
  if (url.username || url.password) return { error: 'The address cannot contain a user name or password.' }
  if (url.href.length > MAX_HREF_LENGTH) return { error: `The URL can be at most ${MAX_HREF_LENGTH} characters.` }
  return { href: url.href }
}

const labelSchema = z
  .string()
  .transform((s) => s.trim())
  .pipe(
    z
      .string()
      .min(1, 'Enter the label the menu shows.')
      .max(MAX_LABEL_LENGTH, `The label can be at most ${MAX_LABEL_LENGTH} characters.`)
      .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'The label cannot contain control characters.'),
  )

/** Checks one link as typed; throws ValidationError with `label` and/or `href` messages. */
export function parseLink(input: { label?: unknown; href?: unknown }): ResourceLink {
  const errors: Record<string, string> = {}
  const label = labelSchema.safeParse(typeof input.label === 'string' ? input.label : '')
  if (!label.success) errors.label = label.error.issues[0]!.message
  const href = checkHref(typeof input.href === 'string' ? input.href : '')
  if ('error' in href) errors.href = href.error
  if (Object.keys(errors).length) throw new ValidationError(errors, 'The link was not added. Correct the highlighted fields.')
  return { label: (label as { data: string }).data, href: (href as { href: string }).href }
}

const storedLinksSchema = z.array(z.object({ label: z.string(), href: z.string() })).max(MAX_RESOURCE_LINKS)

/** The stored JSON as links, or null when it is not a valid list (the defaults apply). */
function parseStoredLinks(value: string): ResourceLink[] | null {
  try {
    const parsed = storedLinksSchema.safeParse(JSON.parse(value))
    if (!parsed.success) return null
    const links = parsed.data.map((l) => {
      const checked = parseLink(l)
      return Object.freeze({ label: checked.label, href: checked.href })
    })
    return Object.freeze(links) as ResourceLink[]
  } catch {
    return null
  }
}

/** The Resource Center menu's links, from the short-lived settings cache. */
export async function getResourceLinks(db: Db): Promise<Array<{ label: string; href: string }>> {
  return (await getSettings(db)).resourceLinks as Array<{ label: string; href: string }>
}

export interface ResourceLinksState {
  /** With a short key from the URL (unique in a list), for the page's element ids. */
  links: Array<ResourceLink & { key: string }>
  /** True when no list is stored: the built-in defaults. */
  isDefault: boolean
  /** A token of the stored list: edits made from an older page are refused, not misapplied. */
  version: string
}

function versionOf(value: string | null): string {
  return value === null ? 'default' : sha256(value).slice(0, 16)
}

/** The current list straight from the database (for the Settings page). */
export async function resourceLinksState(db: Db): Promise<ResourceLinksState> {
  const raw = await readLinksRow(db)
  const parsed = raw === null ? null : parseStoredLinks(raw)
  const links = [...(parsed ?? DEFAULT_LINKS)].map((l) => ({ label: l.label, href: l.href, key: sha256(l.href).slice(0, 12) }))
  return { links, isDefault: parsed === null, version: versionOf(raw) }
}

export class StaleListError extends ConflictError {
  constructor() {
    super('The Resource Center links were changed meanwhile (perhaps by another Administrator). Nothing was changed: here is the current list; try again.')
  }
}

/**
 * Applies one edit to the list: refused when the page's version is not the stored one, and
 * written only if nobody wrote in between (compare and swap). Audited with the edit.
 */
async function editLinks(db: Db, actor: Actor, version: unknown, action: string, edit: (links: ResourceLink[]) => { links: ResourceLink[]; fields: Record<string, string | number | boolean | null> }): Promise<void> {
  const raw = await readLinksRow(db)
  if (version !== versionOf(raw)) throw new StaleListError()
  const current = [...(raw === null ? DEFAULT_LINKS : (parseStoredLinks(raw) ?? DEFAULT_LINKS))].map((l) => ({ ...l }))
  const { links, fields } = edit(current)
  const value = JSON.stringify(links.map((l) => ({ label: l.label, href: l.href })))
  await db.transaction().execute(async (trx) => {
    if (!(await swapLinksRow(trx, raw, value))) throw new StaleListError()
    await audit(trx, actor, { action, target: { type: 'setting', id: KEY_RESOURCE_LINKS }, fields: { ...fields, count: links.length } })
  })
  cache.delete(db)
}

function linkAt(links: ResourceLink[], index: unknown): number {
  const i = typeof index === 'string' && /^\d{1,3}$/.test(index) ? Number(index) : -1
  if (i < 0 || i >= links.length) throw new SettingsRuleError('links', 'That link is no longer in the list.')
  return i
}

export async function addResourceLink(db: Db, actor: Actor, version: unknown, input: { label?: unknown; href?: unknown }): Promise<ResourceLink> {
  const link = parseLink(input)
  await editLinks(db, actor, version, 'settings.resource_link_add', (links) => {
    if (links.length >= MAX_RESOURCE_LINKS) throw new SettingsRuleError('links', `The Resource Center can hold at most ${MAX_RESOURCE_LINKS} links. Remove one first.`)
    if (links.some((l) => l.href === link.href)) throw new ValidationError({ href: 'This URL is already in the list.' }, 'The link was not added. Correct the highlighted fields.')
    return { links: [...links, link], fields: { label: link.label, href: link.href } }
  })
  return link
}

export async function removeResourceLink(db: Db, actor: Actor, version: unknown, index: unknown): Promise<ResourceLink> {
  let removed: ResourceLink | undefined
  await editLinks(db, actor, version, 'settings.resource_link_remove', (links) => {
    const i = linkAt(links, index)
    removed = links[i]!
    return { links: links.filter((_, j) => j !== i), fields: { label: removed.label, href: removed.href } }
  })
  return removed!
}

export async function moveResourceLink(db: Db, actor: Actor, version: unknown, index: unknown, direction: unknown): Promise<ResourceLink> {
  if (direction !== 'up' && direction !== 'down') throw new SettingsRuleError('links', 'Choose whether to move the link up or down.')
  let moved: ResourceLink | undefined
  await editLinks(db, actor, version, 'settings.resource_link_move', (links) => {
    const i = linkAt(links, index)
    const j = direction === 'up' ? i - 1 : i + 1
    moved = links[i]!
    if (j < 0 || j >= links.length) throw new SettingsRuleError('links', `“${moved.label}” is already ${direction === 'up' ? 'first' : 'last'}.`)
    const next = [...links]
    next[i] = links[j]!
    next[j] = moved
    return { links: next, fields: { label: moved.label, href: moved.href, from: i + 1, to: j + 1 } }
  })
  return moved!
}

/** Back to the built-in links (the stored list is deleted, so later defaults apply too). */
export async function resetResourceLinks(db: Db, actor: Actor): Promise<void> {
  await db.transaction().execute(async (trx) => {
    if (await deleteLinksRow(trx)) await audit(trx, actor, { action: 'settings.resource_links_reset', target: { type: 'setting', id: KEY_RESOURCE_LINKS } })
  })
  cache.delete(db)
}
