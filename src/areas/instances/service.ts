import crypto from 'node:crypto'
import { SignJWT } from 'jose'
import type { Account, User } from '../../db/schema.ts'
import type { Actor } from '../../lib/actor.ts'
import type { Portal } from '../../types.ts'
import { ConflictError } from '../../lib/errors.ts'
import { roleLabel } from '../../lib/roles.ts'
import { LICENSED_APP_CODES, parseApps } from '../accounts/licensed-apps.ts'
import { audit } from '../audit/service.ts'
import { findLogoPng } from '../logos/repository.ts'
import { activeSigningKey } from './signing-keys.ts'

// Single sign-on into a customer's instance (docs/sso.md is the contract).

export const ASSERTION_TTL_S = 60
export const TRANSFER_TTL_S = 300
export const DEMO_INSTANCE_PATH = '/demo-instance'

/** Where an account's instance lives: its instance URL, or the demo instance when it runs. */
export function instanceBase(portal: Pick<Portal, 'config'>, account: Pick<Account, 'instance_url'>): string | null {
  if (account.instance_url) return account.instance_url.replace(/\/+$/, '')
  return portal.config.demoInstance ? `${portal.config.baseUrl}${DEMO_INSTANCE_PATH}` : null
}

/** The interface the licenses call for: Vulnerability Management first, then WAS, then CS. */
export function interfaceFor(licensedApps: string): 'vm' | 'was' | 'cs' | null {
  const apps = parseApps(licensedApps)
  return LICENSED_APP_CODES.find((code) => apps.includes(code)) ?? null
}

/** Why single sign-on cannot open this account's instance, or null (asked for every row of a page). */
export function ssoUnavailableReason(portal: Pick<Portal, 'config'>, account: Pick<Account, 'instance_url' | 'licensed_apps'>): string | null {
  if (!instanceBase(portal, account)) return 'This account has no instance URL yet.'
  if (!interfaceFor(account.licensed_apps)) return 'This account has no licensed apps.'
  return null
}

function person(u: Pick<User, 'uuid' | 'name' | 'username'>) {
  return { sub: u.uuid, name: u.name, preferred_username: u.username }
}

/** Signs the single sign-on assertion for the actor (and the assisting Administrator), with the account's logo. */
export async function signAssertion(portal: Portal, actor: Actor, account: Account) {
  const base = instanceBase(portal, account)
  const iface = interfaceFor(account.licensed_apps)
  if (!base || !iface) throw new ConflictError(ssoUnavailableReason(portal, account)!)
  const { user, assistedBy } = actor
  const logoPng = account.logo_id ? await findLogoPng(portal.db, account.logo_id) : null
  const audience = new URL(base).origin
  const { kid, key } = await activeSigningKey(portal)
  const claims: Record<string, unknown> = {
    name: user.name,
    preferred_username: user.username,
    role: { level: user.role, label: roleLabel(user.role) },
    account: { uuid: account.uuid, name: account.custom_name || account.container_name },
    interface: iface,
    logo: logoPng ? `data:image/png;base64,${logoPng.toString('base64')}` : null,
    return_url: `${portal.config.baseUrl}/accounts`,
  }
  if (assistedBy) claims.act = person(assistedBy)
  const jti = crypto.randomUUID()
  const assertion = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
    .setIssuer(portal.config.baseUrl)
    .setAudience(audience)
    .setSubject(user.uuid)
    .setIssuedAt()
    .setExpirationTime(`${ASSERTION_TTL_S}s`)
    .setJti(jti)
    .sign(key)
  await audit(portal.db, actor, { action: 'instance.sso', target: { type: 'account', id: account.uuid, name: account.container_name }, fields: { interface: iface, instance: audience, jti } })
  return { assertion, action: `${base}/mssp/sso`, origin: audience, interface: iface }
}

/**
 * Tells every instance a deleted user could reach who receives their objects (the guide's
 * deletion table is applied by the instance). Failures are audited, never thrown.
 */
export async function notifyUserTransfer(portal: Portal, by: Parameters<typeof audit>[1], deleted: Pick<User, 'uuid' | 'username' | 'name'>, successor: Pick<User, 'uuid' | 'username' | 'name'>, bases: string[]): Promise<void> {
  if (bases.length === 0) return
  const { kid, key } = await activeSigningKey(portal)
  for (const base of [...new Set(bases)]) {
    const audience = new URL(base).origin
    const message = await new SignJWT({ typ: 'user-transfer', successor: person(successor) })
      .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
      .setIssuer(portal.config.baseUrl)
      .setAudience(audience)
      .setSubject(deleted.uuid)
      .setIssuedAt()
      .setExpirationTime(`${TRANSFER_TTL_S}s`)
      .setJti(crypto.randomUUID())
      .sign(key)
    let outcome: 'success' | 'failure' = 'failure'
    let detail = ''
    try {
      const res = await fetch(`${base}/mssp/user-transfer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message }), signal: AbortSignal.timeout(5_000) })
      outcome = res.ok ? 'success' : 'failure'
      detail = `HTTP ${res.status}`
    } catch (err) {
      detail = (err as Error).message.slice(0, 200)
    }
    await audit(portal.db, by, { action: 'instance.user_transfer', outcome, target: { type: 'user', id: deleted.uuid, name: deleted.username }, fields: { instance: audience, successor: successor.username, result: detail } })
  }
}
