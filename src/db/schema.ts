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
  /** Tenable's authorizations (0/1): the user's API keys work; the user may sign in with a password. */
  api_permitted: Generated<number>
  password_permitted: Generated<number>
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
  pending_2fa: Generated<number>
  code_attempts: Generated<number>
  assist_user_id: number | null
  assist_started_at: number | null
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
  bound_to: string | null
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
  /** When the secret the message carries (a link, a code) expires; its content is cleared then. Null: none, or cleared. */
  expires_at: number | null
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

export interface LogosTable {
  id: Generated<number>
  uuid: string
  name: string
  filename: string
  png: Buffer
  width: number
  height: number
  created_by: number | null
  created_at: number
  updated_at: number
}

export interface AccountsTable {
  id: Generated<number>
  uuid: string
  container_name: string
  custom_name: string | null
  site_id: string | null
  region: string | null
  /** Comma-separated licensed app codes: vm, was, cs. */
  licensed_apps: string
  licensed_assets: number
  licensed_assets_limit: number
  license_utilization: number
  license_expiration_date: number | null
  logo_id: number | null
  notes: string
  lms_customer_id: string | null
  sso_username: string | null
  /** JSON array of domain names. */
  domains: string
  instance_url: string | null
  contact_email: string | null
  search_text: string
  created_by: number | null
  created_at: number
  modified_at: number
}

export interface UserAccountsTable {
  user_id: number
  account_id: number
  created_at: number
}

/** Per user, how many accounts are assigned to them (kept by triggers, migration 0013). */
export interface AssignedTotalsTable {
  user_id: number
  accounts: number
}

/** Per user, the regions of their assigned accounts and how many are in each (kept by triggers, migration 0013). */
export interface AssignedRegionsTable {
  user_id: number
  region: string
  accounts: number
}

export interface AccountNameHistoryTable {
  uuid: string
  account_id: number
  user_id: number | null
  user_name: string
  old_value: string | null
  new_value: string | null
  created_at: number
}

export interface SavedSearchesTable {
  uuid: string
  user_id: number
  name: string
  query: string
  created_at: number
}

export interface TwoFactorTable {
  user_id: number
  sms_phone: string | null
  pending_phone: string | null
  email_enabled: number
  totp_secret: string | null
  pending_totp_secret: string | null
  pending_totp_created_at: number | null
  totp_last_step: number | null
  updated_at: number
}

export interface RecoveryCodesTable {
  id: string
  user_id: number
  code_hash: string
  used_at: number | null
  created_at: number
}

export interface SsoSigningKeysTable {
  kid: string
  private_key: string
  public_jwk: string
  created_at: number
  retired_at: number | null
}

/** Rate-limit counters shared by every process (src/ops/rate-limit-store.ts). */
export interface RateLimitsTable {
  key: string
  hits: number
  expires_at: number
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
  logos: LogosTable
  accounts: AccountsTable
  user_accounts: UserAccountsTable
  assigned_regions: AssignedRegionsTable
  assigned_totals: AssignedTotalsTable
  account_name_history: AccountNameHistoryTable
  saved_searches: SavedSearchesTable
  two_factor: TwoFactorTable
  recovery_codes: RecoveryCodesTable
  sso_signing_keys: SsoSigningKeysTable
  rate_limits: RateLimitsTable
}

export type TwoFactor = Selectable<TwoFactorTable>

export type Account = Selectable<AccountsTable>
export type NewAccount = Insertable<AccountsTable>
export type Logo = Selectable<LogosTable>

export type User = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type UserUpdate = Updateable<UsersTable>
export type Session = Selectable<SessionsTable>
export type AuditEvent = Selectable<AuditEventsTable>
export type OutboxMessage = Selectable<OutboxTable>
