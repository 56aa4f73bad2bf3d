import crypto from 'node:crypto'
import type { User } from '../../db/schema.ts'
import type { Actor } from '../../lib/actor.ts'
import type { Portal } from '../../types.ts'
import { hmac, safeEqual } from '../../lib/tokens.ts'
import { audit } from '../audit/service.ts'
import * as repo from './repository.ts'

const TOUCH_INTERVAL_MS = 60_000

/**
 * Parses `accessKey=...;secretKey=...` (with or without spaces, either order).
 * Returns null for anything else.
 */
export function parseApiKeysHeader(header: string | string[] | undefined): { accessKey: string; secretKey: string } | null {
  if (typeof header !== 'string' || header.length > 500) return null
  const parts = new Map<string, string>()
  for (const part of header.split(';')) {
    const trimmed = part.trim()
    if (!trimmed) continue
    const eq = trimmed.indexOf('=')
    if (eq < 1) return null
    const name = trimmed.slice(0, eq).trim()
    if (parts.has(name)) return null
    parts.set(name, trimmed.slice(eq + 1).trim())
  }
  const accessKey = parts.get('accessKey')
  const secretKey = parts.get('secretKey')
  if (parts.size !== 2 || !accessKey || !secretKey) return null
  if (!/^[0-9a-f]{64}$/.test(accessKey) || !/^[0-9a-f]{64}$/.test(secretKey)) return null
  return { accessKey, secretKey }
}

/** The key used to hash API secrets (a fast HMAC suits random secrets; not a slow password hash). */
export function apiKeyHashKey(app: Pick<Portal, 'keys'>): Buffer {
  return crypto.createHmac('sha256', app.keys.secrets).update('mssp-portal api key secrets').digest()
}

/** Generates a user's keys, replacing any they had at once. The secret is returned once, never stored. */
export async function generateApiKeys(app: Pick<Portal, 'db' | 'keys'>, actor: Actor, user: User): Promise<{ accessKey: string; secretKey: string }> {
  const accessKey = crypto.randomBytes(32).toString('hex')
  const secretKey = crypto.randomBytes(32).toString('hex')
  await repo.replaceApiKeys(app.db, {
    user_id: user.id,
    access_key: accessKey,
    secret_hash: hmac(apiKeyHashKey(app), secretKey),
    created_at: Date.now(),
  })
  await audit(app.db, actor, { action: 'api_keys.generate', target: { type: 'user', id: user.uuid, name: user.username } })
  return { accessKey, secretKey }
}

/** The enabled user owning these keys (from parseApiKeysHeader), or null. Records the use at most once a minute. */
export async function authenticateApiKeys(app: Pick<Portal, 'db' | 'keys'>, keys: { accessKey: string; secretKey: string }): Promise<User | null> {
  const row = await repo.findKeyWithUser(app.db, keys.accessKey)
  const expected = row?.secret_hash ?? 'x'.repeat(43)
  const matches = safeEqual(hmac(apiKeyHashKey(app), keys.secretKey), expected)
  if (!row || !matches || row.enabled !== 1 || row.api_permitted !== 1) return null
  const now = Date.now()
  if (row.key_last_used_at === null || now - row.key_last_used_at >= TOUCH_INTERVAL_MS) await repo.touchApiKey(app.db, row.id, now)
  const { secret_hash: _s, key_last_used_at: _l, ...user } = row
  return user as User
}
