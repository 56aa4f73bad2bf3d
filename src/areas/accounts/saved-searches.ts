import type { Kysely } from 'kysely'
import { z } from 'zod'
import type { Database } from '../../db/schema.ts'
import { ConflictError, NotFoundError, ValidationError } from '../../lib/errors.ts'
import { uuid } from '../../lib/tokens.ts'
import type { Actor } from '../../lib/actor.ts'
import { audit } from '../audit/service.ts'

// Saved searches belong to one user: a name and the Accounts page's query string.

const ALLOWED_PARAMS = new Set(['q', 'sort', 'dir', 'app', 'region', 'expires'])

/** Keeps only the Accounts page's own parameters, so a saved search is a plain page URL. */
export function normaliseQuery(raw: string): string {
  const input = new URLSearchParams(raw.replace(/^\?/, ''))
  const out = new URLSearchParams()
  for (const [k, v] of input) if (ALLOWED_PARAMS.has(k) && v && v.length <= 200 && !out.has(k)) out.set(k, v)
  return out.toString()
}

export function listSavedSearches(db: Kysely<Database>, userId: number) {
  return db.selectFrom('saved_searches').select(['uuid', 'name', 'query']).where('user_id', '=', userId).orderBy('name').execute()
}

/** Saves the actor's search under a name of their own (audited); returns its id. */
export async function saveSearch(db: Kysely<Database>, actor: Actor, input: { name: unknown; query: unknown }): Promise<string> {
  const userId = actor.user.id
  const parsed = z.object({ name: z.string().trim().min(1, 'Name the search.').max(80, 'The name can be at most 80 characters.'), query: z.string().max(2000) }).safeParse(input)
  if (!parsed.success) throw new ValidationError({ name: parsed.error.issues[0]!.message })
  const existing = await db.selectFrom('saved_searches').select('uuid').where('user_id', '=', userId).where('name', '=', parsed.data.name).executeTakeFirst()
  if (existing) throw new ConflictError(`You already have a saved search named “${parsed.data.name}”.`)
  const id = uuid()
  const query = normaliseQuery(parsed.data.query)
  await db.insertInto('saved_searches').values({ uuid: id, user_id: userId, name: parsed.data.name, query, created_at: Date.now() }).execute()
  await audit(db, actor, { action: 'saved_search.create', target: { type: 'saved_search', id, name: parsed.data.name }, fields: { query } })
  return id
}

/** Deletes one of the actor's saved searches (audited). */
export async function deleteSavedSearch(db: Kysely<Database>, actor: Actor, searchUuid: string): Promise<void> {
  const row = await db.deleteFrom('saved_searches').where('uuid', '=', searchUuid).where('user_id', '=', actor.user.id).returning('name').executeTakeFirst()
  if (!row) throw new NotFoundError()
  await audit(db, actor, { action: 'saved_search.delete', target: { type: 'saved_search', id: searchUuid, name: row.name } })
}
