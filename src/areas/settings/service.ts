import type { Kysely } from 'kysely'
import type { Database } from '../../db/schema.ts'

// Portal-wide settings (the settings table). Read on every guarded request, so kept in
// memory for a few seconds: another process's change applies within SETTINGS_TTL_MS.
export const SETTINGS_TTL_MS = 5_000

export interface Settings {
  require2fa: boolean
}

const DEFAULTS: Settings = { require2fa: false }
const cache = new WeakMap<Kysely<Database>, { at: number; settings: Settings }>()

export async function getSettings(db: Kysely<Database>): Promise<Settings> {
  const hit = cache.get(db)
  if (hit && Date.now() - hit.at < SETTINGS_TTL_MS) return hit.settings
  const rows = await db.selectFrom('settings').select(['key', 'value']).execute()
  const settings = { ...DEFAULTS }
  for (const r of rows) if (r.key === 'require_2fa') settings.require2fa = r.value === 'true'
  cache.set(db, { at: Date.now(), settings })
  return settings
}

export async function setRequire2fa(db: Kysely<Database>, value: boolean): Promise<void> {
  const now = Date.now()
  await db
    .insertInto('settings')
    .values({ key: 'require_2fa', value: String(value), updated_at: now })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value: String(value), updated_at: now }))
    .execute()
  cache.delete(db)
}
