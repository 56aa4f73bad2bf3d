import { z } from 'zod'
import type { TwoFactor, User } from '../../db/schema.ts'

/** Tenable's user object (times in epoch milliseconds). */
export const apiUserSchema = z.object({
  uuid: z.string(),
  id: z.number().int(),
  username: z.string(),
  user_name: z.string(),
  email: z.string().nullable(),
  name: z.string(),
  type: z.literal('local'),
  permissions: z.number().int(),
  enabled: z.boolean(),
  undeletable: z.boolean(),
  lockout: z.number().int(),
  login_fail_count: z.number().int(),
  login_fail_total: z.number().int(),
  last_login_attempt: z.number().nullable(),
  lastlogin: z.number().nullable(),
  last_apikey_access: z.number().nullable(),
  api_permitted: z.boolean(),
  ui_permitted: z.boolean(),
  two_factor: z.object({ sms_phone: z.string().nullable(), sms_enabled: z.boolean(), email_enabled: z.boolean() }),
})
export type ApiUser = z.infer<typeof apiUserSchema>

export function toApiUser(user: User, extra: { lastApiKeyAccess: number | null; undeletable?: boolean; twoFactor?: TwoFactor | null }): ApiUser {
  const tf = extra.twoFactor
  return {
    uuid: user.uuid,
    id: user.id,
    username: user.username,
    user_name: user.username,
    email: user.email,
    name: user.name,
    type: 'local',
    permissions: user.role,
    enabled: user.enabled === 1,
    undeletable: extra.undeletable ?? false,
    lockout: user.locked_until !== null && user.locked_until > Date.now() ? 1 : 0,
    login_fail_count: user.failed_login_count,
    login_fail_total: user.failed_login_total,
    last_login_attempt: user.last_login_attempt_at,
    lastlogin: user.last_login_at,
    last_apikey_access: extra.lastApiKeyAccess,
    api_permitted: user.api_permitted === 1,
    ui_permitted: user.password_permitted === 1,
    two_factor: { sms_phone: tf?.sms_phone ?? null, sms_enabled: Boolean(tf?.sms_phone), email_enabled: tf?.email_enabled === 1 },
  }
}
