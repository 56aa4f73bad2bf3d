import type { FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database, User } from '../../db/schema.ts'
import type { Actor, Origin } from '../../lib/actor.ts'
import { uuid } from '../../lib/tokens.ts'
import { insertAuditEvent } from './repository.ts'
import { signInCounter } from '../../ops/metrics.ts'

export interface AuditInput {
  action: string
  outcome?: 'success' | 'failure'
  /** Who acted; defaults to the signed-in user of the request. */
  actor?: Pick<User, 'id' | 'username'> | null
  target?: { type: string; id: string | number; name?: string | null }
  fields?: Record<string, string | number | boolean | null>
}

/** What audit() is told of who acted; a request is still accepted while services move to actors. */
type AuditBy = Actor | Origin | FastifyRequest | null

function actorFrom(by: AuditBy): Actor | Origin | null {
  if (by === null || !('server' in by)) return by
  return by.auth ? { user: by.auth.user, assistedBy: by.auth.assistedBy, ip: by.ip } : { ip: by.ip }
}

/** Records one audit event: UTC time, actor, the assisting Administrator, action, target, outcome. */
export async function audit(db: Kysely<Database>, by: AuditBy, input: AuditInput): Promise<void> {
  const from = actorFrom(by)
  const acting = from && 'user' in from ? from : null
  const actor = input.actor !== undefined ? input.actor : (acting?.user ?? null)
  // While assisting, every event names the Administrator behind the user.
  const assisting = acting?.assistedBy ?? null
  await insertAuditEvent(db, {
    id: uuid(),
    created_at: Date.now(),
    actor_user_id: actor?.id ?? null,
    actor_name: actor?.username ?? null,
    assisting_user_id: assisting?.id ?? null,
    assisting_name: assisting?.username ?? null,
    action: input.action,
    outcome: input.outcome ?? 'success',
    target_type: input.target?.type ?? null,
    target_id: input.target ? String(input.target.id) : null,
    target_name: input.target?.name ?? null,
    ip: from?.ip ?? null,
    fields: JSON.stringify(input.fields ?? {}),
  })
  if (input.action === 'auth.sign_in') signInCounter.inc({ outcome: input.outcome ?? 'success' })
}
