import type { Kysely } from 'kysely'
import type { AuditEvent, Database } from '../../db/schema.ts'

export async function insertAuditEvent(db: Kysely<Database>, event: AuditEvent): Promise<void> {
  await db.insertInto('audit_events').values(event).execute()
}

export function latestAuditEvents(db: Kysely<Database>, limit: number): Promise<AuditEvent[]> {
  return db.selectFrom('audit_events').selectAll().orderBy('created_at', 'desc').orderBy('id').limit(limit).execute()
}
