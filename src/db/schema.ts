import type { Generated, Insertable, Selectable, Updateable } from 'kysely'

// Times are epoch milliseconds (bigint in PostgreSQL, parsed to number), flags are 0/1.

export interface UsersTable {
  id: Generated<number>
  uuid: string
  username: string
  name: string
  email: string | null
  password_hash: string
  role: number
  enabled: number
  failed_login_count: Generated<number>
  failed_login_total: Generated<number>
  locked_until: number | null
  last_login_at: number | null
  last_failed_login_at: number | null
  last_login_attempt_at: number | null
  password_changed_at: number
  created_at: number
  updated_at: number
}

export interface ApprovedDomainsTable {
  domain: string
  created_at: number
}

export interface SessionsTable {
  id: string
  user_id: number
  remember_me: number
  created_at: number
  last_seen_at: number
  expires_at: number
  ip: string | null
  user_agent: string | null
  flash: string | null
}

export interface OneTimeCodesTable {
  id: string
  purpose: string
  user_id: number | null
  code_hash: string
  created_at: number
  expires_at: number
  used_at: number | null
  attempts: Generated<number>
}

export interface AuditEventsTable {
  id: string
  created_at: number
  actor_user_id: number | null
  actor_name: string | null
  assisting_user_id: number | null
  assisting_name: string | null
  action: string
  outcome: 'success' | 'failure'
  target_type: string | null
  target_id: string | null
  target_name: string | null
  ip: string | null
  fields: string
}

export interface OutboxTable {
  id: string
  created_at: number
  kind: 'email' | 'sms'
  recipient: string
  subject: string
  body: string
  status: 'stored' | 'sending' | 'sent' | 'failed'
  attempts: Generated<number>
  sent_at: number | null
  error: string | null
}

export interface SettingsTable {
  key: string
  value: string
  updated_at: number
}

export interface ApiKeysTable {
  user_id: number
  access_key: string
  secret_hash: string
  created_at: number
  last_used_at: number | null
}

export interface Database {
  users: UsersTable
  approved_domains: ApprovedDomainsTable
  sessions: SessionsTable
  one_time_codes: OneTimeCodesTable
  audit_events: AuditEventsTable
  outbox: OutboxTable
  settings: SettingsTable
  api_keys: ApiKeysTable
}

export type User = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type UserUpdate = Updateable<UsersTable>
export type Session = Selectable<SessionsTable>
export type AuditEvent = Selectable<AuditEventsTable>
export type OutboxMessage = Selectable<OutboxTable>
