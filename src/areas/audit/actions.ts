import type { AuditRow } from './repository.ts'

// The one registry of audit actions: for each action the portal records, its readable
// label, Tenable's crud letter and the sentence that describes an event. The Audit Log
// page (its table, its Action filter and its CSV export) and the API's events all read it.
// test/routes/audit-registry.test.ts fails when src/ records an action missing here.

export type Crud = 'c' | 'r' | 'u' | 'd'
export type FieldValue = string | number | boolean | null

type Describable = Pick<AuditRow, 'action' | 'outcome' | 'actor_name' | 'assisting_name' | 'target_type' | 'target_id' | 'target_name' | 'fields'>

/** What a sentence is made from. */
export interface Sentence {
  actor: string
  target: string
  /** The actor acted on themself (or on nothing). */
  self: boolean
  failed: boolean
  /** ` (reason)` when the event has a reason field, else ''. */
  reason: string
  f: Record<string, FieldValue>
  e: Describable
}

export interface AuditAction {
  label: string
  /** Create, read, update or delete (sign-ins and exports read). */
  crud: Crud
  say: (s: Sentence) => string
  /** The sentence speaks of failure itself; others get "It failed." added. */
  failures?: true
}

const plural = (n: unknown, one: string, many = `${one}s`) => `${String(n ?? 0)} ${Number(n) === 1 ? one : many}`
const yesNo = (v: FieldValue | undefined) => (v === true || v === 1 || v === 'true' ? 'yes' : 'no')
const their = ({ self, target }: Sentence) => (self ? 'their' : `${target}'s`)

export const AUDIT_ACTIONS = {
  // --- Signing in ---------------------------------------------------------------------
  'auth.sign_in': {
    label: 'Sign in',
    crud: 'r',
    failures: true,
    say: ({ actor, target, failed, reason, f, e }) =>
      failed ? `Sign-in failed for ${target || String(f.username ?? e.actor_name ?? 'an unknown user')}${reason}.` : `${actor} signed in${f.method ? ` (${String(f.method)})` : ''}.`,
  },
  'auth.sign_out': { label: 'Sign out', crud: 'r', say: ({ actor }) => `${actor} signed out.` },
  'auth.lockout': { label: 'Locked out', crud: 'u', say: ({ actor, target, f }) => `${target || actor} was locked out for ${plural(f.minutes, 'minute')} after ${plural(f.failures, 'failed sign-in')}.` },
  'auth.password_accepted': { label: 'Password accepted, second factor due', crud: 'r', say: ({ actor }) => `${actor} entered the right password; a second factor is due.` },
  'auth.code_resent': { label: 'Verification code resent', crud: 'r', say: ({ actor, f }) => `${actor} asked for a new verification code${f.channel ? ` by ${String(f.channel)}` : ''}.` },
  'auth.password_reset_requested': {
    label: 'Password reset requested',
    crud: 'c',
    failures: true,
    say: ({ target, failed, f }) => (failed ? `A password reset was asked for ${String(f.username ?? 'a user')}, who is unknown or disabled: no link was sent.` : `A password reset link was sent to ${target}.`),
  },
  'auth.password_reset': { label: 'Password reset', crud: 'u', say: ({ actor, target }) => `${target || actor} set a new password with a reset link.` },
  'setup.first_administrator': { label: 'First Administrator created', crud: 'c', say: ({ actor }) => `${actor} created the first Administrator account with the setup link.` },
  'security.refusals': {
    label: 'Requests refused',
    crud: 'r',
    say: ({ f }) =>
      `${plural(f.count, 'request')} ${f.kind === 'csrf' ? 'failed the CSRF check' : f.kind === 'api_key' ? 'gave invalid API keys' : f.kind === 'rate_limited' ? 'were rate-limited' : 'were refused (403)'}` +
      ` from ${plural(f.addresses, 'address', 'addresses')}${f.top ? ` (${String(f.top)})` : ''}.`,
  },

  // --- Accounts -----------------------------------------------------------------------
  'account.create': { label: 'Account created', crud: 'c', say: ({ actor, target }) => `${actor} created the account ${target}.` },
  'account.update': { label: 'Account updated', crud: 'u', say: ({ actor, target, f }) => `${actor} updated the account ${target}${f.changed ? ` (${String(f.changed).replace(/,/g, ', ')})` : ''}.` },
  'account.assign_logo': {
    label: 'Logo assigned to accounts',
    crud: 'u',
    say: ({ actor, target, f }) => `${actor} assigned ${f.logo && f.logo !== '(No Logo)' ? `the logo ${String(f.logo)}` : target ? `the logo ${target}` : 'no logo'} to ${plural(f.accounts, 'account')}.`,
  },
  'account.import': { label: 'Accounts imported', crud: 'c', say: ({ actor, f }) => `${actor} imported ${plural(f.accounts, 'account')}.` },
  'account.export': { label: 'Accounts exported', crud: 'r', say: ({ actor, f }) => `${actor} exported the accounts to CSV${Object.keys(f).length ? ` (${fieldsText(f)})` : ''}.` },
  'saved_search.create': { label: 'Search saved', crud: 'c', say: ({ actor, target }) => `${actor} saved the search ${target}.` },
  'saved_search.delete': { label: 'Saved search deleted', crud: 'd', say: ({ actor, target }) => `${actor} deleted the saved search ${target}.` },
  'instance.sso': { label: 'Signed in to an instance', crud: 'r', say: ({ actor, target, f }) => `${actor} signed in to the instance of ${target}${f.interface ? ` (${String(f.interface)})` : ''}.` },
  'instance.user_transfer': {
    label: 'Deleted user sent to an instance',
    crud: 'u',
    failures: true,
    say: ({ actor, target, failed, f }) =>
      `${actor} ${failed ? 'could not tell' : 'told'} the instance ${String(f.instance ?? '')} to give the objects of the deleted user ${target} to ${String(f.successor ?? 'their successor')}${f.result ? ` (${String(f.result)})` : ''}.`,
  },

  // --- Users --------------------------------------------------------------------------
  'user.create': { label: 'User created', crud: 'c', say: ({ actor, target, f }) => `${actor} created the user ${target}${f.role ? ` (${String(f.role)})` : ''}.` },
  'user.update': { label: 'User updated', crud: 'u', say: ({ actor, target }) => `${actor} updated the user ${target}.` },
  'user.enable': { label: 'User enabled', crud: 'u', say: ({ actor, target }) => `${actor} enabled the user ${target}.` },
  'user.disable': { label: 'User disabled', crud: 'u', say: ({ actor, target }) => `${actor} disabled the user ${target}.` },
  'user.unlock': { label: 'User unlocked', crud: 'u', say: ({ actor, target }) => `${actor} unlocked the user ${target}.` },
  'user.delete': { label: 'User deleted', crud: 'd', say: ({ actor, target, f }) => `${actor} deleted the user ${target}${f.successor ? `; their objects went to ${String(f.successor)}` : ''}.` },
  'user.assign_accounts': { label: 'Accounts assigned to user', crud: 'u', say: ({ actor, target, f }) => `${actor} assigned ${plural(f.accounts, 'account')} to ${target}.` },
  'user.authorizations_update': {
    label: 'User authorizations changed',
    crud: 'u',
    say: ({ actor, target, f }) => `${actor} changed the authorizations of ${target} (API: ${yesNo(f.api_permitted)}, password sign-in: ${yesNo(f.password_permitted)}).`,
  },
  'user.assist_start': { label: 'Assist started', crud: 'r', say: ({ actor, target }) => `${actor} started assisting ${target}.` },
  // Stopped by the Administrator: recorded while still assisting (the actor is the assisted
  // user, the Administrator assists). Ended by the portal (time limit, user disabled): the
  // actor is the Administrator and the reason is a field.
  'user.assist_stop': {
    label: 'Assist ended',
    crud: 'r',
    say: ({ actor, target, f, e }) =>
      f.reason === 'time limit'
        ? `${actor}'s assist of ${target || 'a user'} ended after the ${String(f.minutes ?? '')}-minute time limit.`
        : f.reason
          ? `${actor}'s assist of ${target || 'a user'} ended (${String(f.reason)}).`
          : `${e.assisting_name ?? actor} stopped assisting ${target || actor}.`,
  },
  'user.password_change': {
    label: 'Password changed',
    crud: 'u',
    failures: true,
    say: (s) => `${s.actor} ${s.failed ? 'could not change' : 'changed'} ${their(s)} password${s.failed ? s.reason : ''}.`,
  },
  'user.profile_update': { label: 'Profile updated', crud: 'u', say: ({ actor }) => `${actor} updated their profile.` },
  'user.two_factor_enable': { label: 'Two-factor authentication enabled', crud: 'u', say: ({ actor, f }) => `${actor} turned on two-factor authentication${f.method ? ` (${String(f.method)})` : ''}.` },
  'user.two_factor_disable': {
    label: 'Two-factor authentication disabled',
    crud: 'u',
    failures: true,
    say: ({ actor, failed, reason, f }) =>
      failed ? `${actor} could not turn off two-factor authentication${reason}.` : `${actor} turned off two-factor authentication${f.method ? ` (${String(f.method)})` : ''}.`,
  },
  // Any change of a second factor (add, replace, disable, backup e-mail), e.g. by the API.
  'user.two_factor_change': {
    label: 'Two-factor authentication changed',
    crud: 'u',
    failures: true,
    say: ({ actor, failed, reason, f }) =>
      `${actor} ${failed ? 'could not change' : 'changed'} their two-factor authentication${f.change ? ` (${String(f.change)})` : ''}${failed ? reason : ''}.`,
  },
  'user.two_factor_backup_email': { label: 'Backup e-mail codes changed', crud: 'u', say: ({ actor }) => `${actor} changed their backup e-mail codes.` },
  'user.two_factor_reset': { label: 'Two-factor authentication reset', crud: 'u', say: ({ actor, target }) => `${actor} reset the two-factor authentication of ${target}.` },
  'user.recovery_codes_regenerate': { label: 'Recovery codes regenerated', crud: 'u', say: ({ actor }) => `${actor} generated new recovery codes.` },
  'api_keys.generate': { label: 'API keys generated', crud: 'c', say: ({ actor, target, self }) => `${actor} generated new API keys${self ? '' : ` for ${target}`}.` },
  'user.api_keys_revoke': {
    label: 'API keys revoked',
    crud: 'd',
    say: (s) => `${s.actor} revoked ${their(s)} API keys${s.f.reason ? ` (${String(s.f.reason)})` : ''}.`,
  },

  // --- Logos, settings, the log itself ------------------------------------------------
  'logo.create': { label: 'Logo added', crud: 'c', say: ({ actor, target }) => `${actor} added the logo ${target}.` },
  'logo.update': { label: 'Logo edited', crud: 'u', say: ({ actor, target }) => `${actor} edited the logo ${target}.` },
  'logo.delete': { label: 'Logo deleted', crud: 'd', say: ({ actor, target, f }) => `${actor} deleted the logo ${target}${f.accounts ? `, removing it from ${plural(f.accounts, 'account')}` : ''}.` },
  'settings.require_2fa': { label: 'Two-factor requirement changed', crud: 'u', say: ({ actor, f }) => `${actor} turned ${f.value === true || f.value === 'true' ? 'on' : 'off'} the two-factor requirement.` },
  'settings.domain_add': { label: 'Approved domain added', crud: 'c', say: ({ actor, target }) => `${actor} added the approved domain ${target}.` },
  'settings.domain_remove': { label: 'Approved domain removed', crud: 'd', say: ({ actor, target }) => `${actor} removed the approved domain ${target}.` },
  'settings.resource_link_add': { label: 'Resource link added', crud: 'c', say: ({ actor, f }) => `${actor} added the Resource Center link ${String(f.label ?? '')}.` },
  'settings.resource_link_remove': { label: 'Resource link removed', crud: 'd', say: ({ actor, f }) => `${actor} removed the Resource Center link ${String(f.label ?? '')}.` },
  'settings.resource_link_move': {
    label: 'Resource link moved',
    crud: 'u',
    say: ({ actor, f }) => `${actor} moved the Resource Center link ${String(f.label ?? '')}${f.from && f.to ? ` from position ${String(f.from)} to ${String(f.to)}` : ''}.`,
  },
  'settings.resource_links_reset': { label: 'Resource links reset', crud: 'u', say: ({ actor }) => `${actor} reset the Resource Center links.` },
  'audit.export': { label: 'Audit log exported', crud: 'r', say: ({ actor, f }) => `${actor} exported the audit log${Object.keys(f).length ? ` (${fieldsText(f)})` : ''}.` },
} satisfies Record<string, AuditAction>

export type AuditActionName = keyof typeof AUDIT_ACTIONS

function registered(action: string): AuditAction | undefined {
  return Object.hasOwn(AUDIT_ACTIONS, action) ? (AUDIT_ACTIONS as Record<string, AuditAction>)[action] : undefined
}

export function isRegisteredAction(action: string): action is AuditActionName {
  return registered(action) !== undefined
}

/** The action's label; an action not (or no longer) registered is named from its code. */
export function actionLabel(action: string): string {
  const known = registered(action)
  if (known) return known.label
  // area.verb_object → "Area: verb object"
  const [area, ...rest] = action.split('.')
  const words = (rest.join(' ') || area!).replace(/[_-]+/g, ' ').trim()
  const text = rest.length ? `${area!.replace(/[_-]+/g, ' ')}: ${words}` : words
  return text.charAt(0).toUpperCase() + text.slice(1)
}

/** Tenable's crud letter; an unregistered action reads as an update. */
export function crudOf(action: string): Crud {
  return registered(action)?.crud ?? 'u'
}

/** The event's stored fields (a JSON object); anything else reads as no fields. */
export function parseFields(json: string | null | undefined): Record<string, FieldValue> {
  try {
    const value = JSON.parse(json ?? '{}') as unknown
    if (!value || typeof value !== 'object' || Array.isArray(value)) return {}
    const out: Record<string, FieldValue> = {}
    for (const [k, v] of Object.entries(value)) out[k] = v === null || ['string', 'number', 'boolean'].includes(typeof v) ? (v as FieldValue) : JSON.stringify(v)
    return out
  } catch {
    return {}
  }
}

/** Each field as [key, value] for `key=value`, a value with spaces (or empty) in quotes. */
export function fieldPairs(fields: Record<string, FieldValue>): Array<[string, string]> {
  return Object.entries(fields).map(([k, v]) => {
    const s = v === null ? 'null' : String(v)
    return [k, s === '' || /[\s"=]/.test(s) ? JSON.stringify(s) : s]
  })
}

/** `key=value key="two words"`: compact, and unambiguous where a value has spaces. */
export function fieldsText(fields: Record<string, FieldValue>): string {
  return fieldPairs(fields)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')
}

/** One readable sentence for an event (the page's row, the API's `description`, the CSV's Description). */
export function describeEvent(e: Describable): string {
  const f = parseFields(e.fields)
  const target = e.target_name ?? e.target_id ?? ''
  const s: Sentence = {
    actor: e.actor_name ?? 'An anonymous user',
    target,
    self: e.actor_name !== null && (target === e.actor_name || !target),
    failed: e.outcome === 'failure',
    reason: f.reason ? ` (${String(f.reason)})` : '',
    f,
    e,
  }
  const known = registered(e.action)
  let text: string
  if (known) {
    text = known.say(s)
    if (s.failed && !known.failures) text += ` It failed${s.reason}.`
  } else {
    const label = actionLabel(e.action)
    const what = target ? ` ${e.target_type ? `${e.target_type.replace(/_/g, ' ')} ` : ''}${target}` : ''
    text = `${s.actor}: ${label.charAt(0).toLowerCase()}${label.slice(1)}${what}${s.failed ? ` (failed${s.reason ? `:${s.reason.slice(1, -1)}` : ''})` : ''}.`
  }
  return e.assisting_name && e.action !== 'user.assist_stop' ? `${text} Assisted by ${e.assisting_name}.` : text
}
