// The demo instance's data, in memory: the users it has seen (provisioned on their first
// sign-in from the assertion's claims) and, per account, the objects of its three
// interfaces. A real instance serves one account; the demo serves every account the
// portal sends to it, each in its own partition, so that each looks like its own instance.
import crypto from 'node:crypto'
import type { InterfaceCode, Person } from './verify.ts'

export type ObjectType =
  | 'scan_schedule'
  | 'scan_result'
  | 'scan_template'
  | 'dashboard'
  | 'managed_credential'
  | 'tag'
  | 'recast_rule'
  | 'exclusion'
  | 'system_target_group'
  | 'user_target_group'
  | 'saved_search'
  | 'connector'
  | 'sensor'

export type TransferOutcome = 'migrated' | 'deleted' | 'retained'

/**
 * The user guide's table ("Delete a Tenable.io MSSP Portal User"): what happens to each
 * kind of object when its owner is deleted.
 */
export const TRANSFER_TABLE: Record<ObjectType, { label: string; outcome: TransferOutcome; note: string }> = {
  scan_schedule: { label: 'Scan Schedules', outcome: 'migrated', note: 'Migrated to the new object owner' },
  scan_result: { label: 'Historical Scan Results', outcome: 'migrated', note: 'Migrated to the new object owner' },
  scan_template: { label: 'Scan Templates', outcome: 'migrated', note: 'Migrated to the new object owner' },
  dashboard: { label: 'Custom Dashboards/Widgets', outcome: 'deleted', note: 'Permanently deleted' },
  managed_credential: { label: 'Managed Credentials', outcome: 'retained', note: 'Retained (Created By value displays as null)' },
  tag: { label: 'Tags', outcome: 'retained', note: 'Retained (Created By value displays as null)' },
  recast_rule: { label: 'Recast/Accept Rules', outcome: 'retained', note: 'Retained (Owner value displays as Unknown User)' },
  exclusion: { label: 'Exclusions', outcome: 'retained', note: 'Retained' },
  system_target_group: { label: 'System Target Groups', outcome: 'retained', note: 'Retained' },
  user_target_group: { label: 'User Target Groups', outcome: 'deleted', note: 'Permanently deleted' },
  saved_search: { label: 'Saved Searches', outcome: 'deleted', note: 'Permanently deleted' },
  connector: { label: 'Connectors', outcome: 'retained', note: 'Retained' },
  sensor: { label: 'Sensors', outcome: 'retained', note: 'Retained' },
}

/** Types shown on the Settings page (the rest appear in the interfaces). */
export const SETTINGS_TYPES: ObjectType[] = ['managed_credential', 'tag', 'recast_rule', 'exclusion', 'system_target_group', 'user_target_group', 'connector', 'sensor']

export interface InstanceObject {
  id: string
  type: ObjectType
  /** The interface it belongs to; null for instance-wide objects (credentials, tags, ...). */
  iface: InterfaceCode | null
  name: string
  /** Schedule, target, query or description. */
  detail: string
  /** The owner's (or creator's) sub; null when there is none (any more). */
  owner: string | null
  /** Shown when `owner` is null: 'System', 'Unknown User', or null (displayed as "null"). */
  ownerLabel: string | null
  status?: 'Completed' | 'Running' | 'Scheduled' | 'Never run'
  lastRun?: number | null
}

export interface InstanceUser {
  sub: string
  name: string
  username: string
  /** The role level of their last sign-in; null for users the demo made up. */
  lastRole: number | null
  lastSignIn: number | null
  deleted: boolean
}

interface Partition {
  account: { uuid: string; name: string }
  objects: InstanceObject[]
  /** Users whose own sample objects were created in this partition. */
  seeded: Set<string>
}

// Made-up colleagues who own some of each account's sample objects.
const COLLEAGUES: Person[] = [
  { sub: '7c1d2b6e-8f0a-4f7e-9a51-3d2c1b0a9e81', name: 'Priya Raman', preferred_username: 'priya.raman@customer.example' },
  { sub: '2f9e4a10-5b3c-4d8e-8f61-0a1b2c3d4e52', name: 'Marcus Lee', preferred_username: 'marcus.lee@customer.example' },
  { sub: 'b5a6c7d8-1e2f-4a3b-8c4d-5e6f7a8b9c03', name: 'Sofia Alvarez', preferred_username: 'sofia.alvarez@customer.example' },
]

const HOUR = 3_600_000
const DAY = 24 * HOUR

export class DemoStore {
  readonly users = new Map<string, InstanceUser>()
  readonly #partitions = new Map<string, Partition>()
  readonly #now: () => number

  constructor(opts: { now?: () => number } = {}) {
    this.#now = opts.now ?? Date.now
    for (const c of COLLEAGUES) this.users.set(c.sub, { sub: c.sub, name: c.name, username: c.preferred_username, lastRole: null, lastSignIn: null, deleted: false })
  }

  /** Provisions (or refreshes) the user from a sign-in and makes sure the account's data exists. */
  signIn(user: Person, role: number, account: { uuid: string; name: string }): void {
    const now = this.#now()
    this.upsertUser(user, { lastRole: role, lastSignIn: now })
    const partition = this.#partition(account)
    partition.account.name = account.name
    if (!partition.seeded.has(user.sub)) {
      partition.seeded.add(user.sub)
      partition.objects.push(...sampleObjectsFor(user, now))
    }
  }

  upsertUser(user: Person, extra: Partial<InstanceUser> = {}): InstanceUser {
    const existing = this.users.get(user.sub)
    const next: InstanceUser = {
      sub: user.sub,
      name: user.name,
      username: user.preferred_username,
      lastRole: existing?.lastRole ?? null,
      lastSignIn: existing?.lastSignIn ?? null,
      deleted: false,
      ...extra,
    }
    this.users.set(user.sub, next)
    return next
  }

  objects(accountUuid: string, filter: { type?: ObjectType; types?: ObjectType[]; iface?: InterfaceCode | null } = {}): InstanceObject[] {
    const partition = this.#partitions.get(accountUuid)
    if (!partition) return []
    return partition.objects.filter(
      (o) =>
        (filter.type === undefined || o.type === filter.type) &&
        (filter.types === undefined || filter.types.includes(o.type)) &&
        (filter.iface === undefined || o.iface === filter.iface),
    )
  }

  find(accountUuid: string, id: string): InstanceObject | undefined {
    return this.#partitions.get(accountUuid)?.objects.find((o) => o.id === id)
  }

  add(accountUuid: string, object: Omit<InstanceObject, 'id'>): InstanceObject {
    const partition = this.#partitions.get(accountUuid)
    if (!partition) throw new Error('unknown account')
    const created = { id: crypto.randomUUID(), ...object }
    partition.objects.push(created)
    return created
  }

  ownerName(object: InstanceObject): string | null {
    if (object.owner === null) return object.ownerLabel
    const user = this.users.get(object.owner)
    if (!user) return 'Unknown User'
    return user.deleted ? `${user.name} (deleted)` : user.name
  }

  /**
   * Applies the guide's deletion table to everything the deleted user owns, in every
   * account, and marks the user deleted. Returns how many objects went each way. A user
   * already transferred (a retry with a fresh message) is left alone: all counts are 0.
   */
  transfer(sub: string, successor: Person): Record<TransferOutcome, number> {
    const counts: Record<TransferOutcome, number> = { migrated: 0, deleted: 0, retained: 0 }
    const known = this.users.get(sub)
    if (known?.deleted) return counts
    this.upsertUser(successor)
    for (const partition of this.#partitions.values()) {
      const kept: InstanceObject[] = []
      for (const object of partition.objects) {
        if (object.owner !== sub) {
          kept.push(object)
          continue
        }
        const outcome = TRANSFER_TABLE[object.type].outcome
        counts[outcome] += 1
        if (outcome === 'deleted') continue
        if (outcome === 'migrated') object.owner = successor.sub
        else if (object.type === 'managed_credential' || object.type === 'tag') {
          object.owner = null
          object.ownerLabel = null
        } else if (object.type === 'recast_rule') {
          object.owner = null
          object.ownerLabel = 'Unknown User'
        }
        kept.push(object)
      }
      partition.objects = kept
      if (partition.seeded.has(sub)) partition.seeded.delete(sub)
    }
    if (known) known.deleted = true
    return counts
  }

  #partition(account: { uuid: string; name: string }): Partition {
    let partition = this.#partitions.get(account.uuid)
    if (!partition) {
      partition = { account: { ...account }, objects: colleagueObjects(this.#now()), seeded: new Set() }
      this.#partitions.set(account.uuid, partition)
    }
    return partition
  }
}

type Seed = Omit<InstanceObject, 'id'>

function withIds(seeds: Seed[]): InstanceObject[] {
  return seeds.map((s) => ({ id: crypto.randomUUID(), ...s }))
}

/** Each account's objects owned by the made-up colleagues. */
function colleagueObjects(now: number): InstanceObject[] {
  const [priya, marcus, sofia] = COLLEAGUES.map((c) => c.sub)
  const owned = (owner: string) => ({ owner, ownerLabel: null })
  const system = { owner: null, ownerLabel: 'System' }
  return withIds([
    { type: 'scan_schedule', iface: 'vm', name: 'Weekly external perimeter', detail: 'Weekly, Sunday 01:00 · 203.0.113.0/24', status: 'Completed', lastRun: now - 2 * DAY, ...owned(priya) },
    { type: 'scan_schedule', iface: 'vm', name: 'Datacenter credentialed scan', detail: 'Daily 03:00 · 10.10.0.0/16', status: 'Scheduled', lastRun: now - 21 * HOUR, ...owned(marcus) },
    { type: 'scan_schedule', iface: 'vm', name: 'PCI quarterly', detail: 'Quarterly · cardholder segment', status: 'Never run', lastRun: null, ...owned(sofia) },
    { type: 'scan_result', iface: 'vm', name: 'Weekly external perimeter', detail: '3 critical · 11 high · 40 medium', status: 'Completed', lastRun: now - 2 * DAY, ...owned(priya) },
    { type: 'scan_result', iface: 'vm', name: 'Datacenter credentialed scan', detail: '7 critical · 52 high · 188 medium', status: 'Completed', lastRun: now - 21 * HOUR, ...owned(marcus) },
    { type: 'scan_template', iface: 'vm', name: 'Credentialed patch audit', detail: 'Based on Advanced Network Scan', ...owned(marcus) },
    { type: 'dashboard', iface: 'vm', name: 'Executive risk summary', detail: '6 widgets', ...owned(priya) },
    { type: 'dashboard', iface: 'vm', name: 'Patch SLA tracker', detail: '4 widgets', ...owned(marcus) },
    { type: 'saved_search', iface: 'vm', name: 'Exploitable criticals', detail: 'severity:critical AND exploit_available:true', ...owned(sofia) },
    { type: 'scan_schedule', iface: 'was', name: 'Customer portal (prod)', detail: 'Weekly, Saturday 22:00 · https://portal.customer.example', status: 'Completed', lastRun: now - 5 * DAY, ...owned(sofia) },
    { type: 'scan_result', iface: 'was', name: 'Customer portal (prod)', detail: '0 critical · 2 high · 9 medium', status: 'Completed', lastRun: now - 5 * DAY, ...owned(sofia) },
    { type: 'dashboard', iface: 'was', name: 'OWASP Top 10 overview', detail: '5 widgets', ...owned(sofia) },
    { type: 'saved_search', iface: 'was', name: 'Injection findings', detail: 'category:injection', ...owned(priya) },
    { type: 'scan_schedule', iface: 'cs', name: 'Registry nightly', detail: 'Daily 02:00 · registry.customer.example', status: 'Completed', lastRun: now - 9 * HOUR, ...owned(marcus) },
    { type: 'scan_result', iface: 'cs', name: 'payments-api:2.14.1', detail: '1 critical · 4 high · malware: none', status: 'Completed', lastRun: now - 9 * HOUR, ...owned(marcus) },
    { type: 'dashboard', iface: 'cs', name: 'Image risk by repository', detail: '3 widgets', ...owned(marcus) },
    { type: 'saved_search', iface: 'cs', name: 'Images with malware', detail: 'malware:true', ...owned(priya) },
    { type: 'managed_credential', iface: null, name: 'Windows domain scan account', detail: 'Windows · CORP\\svc-scan', ...owned(marcus) },
    { type: 'tag', iface: null, name: 'Location: Frankfurt', detail: 'Rule: ipv4 in 10.40.0.0/16', ...owned(priya) },
    { type: 'recast_rule', iface: null, name: 'Accept: self-signed certificate on lab hosts', detail: 'Plugin 51192 · accept · expires in 90 days', ...owned(sofia) },
    { type: 'exclusion', iface: null, name: 'Mainframe maintenance window', detail: 'Sundays 00:00–04:00 · 10.10.9.0/24', ...owned(marcus) },
    { type: 'system_target_group', iface: null, name: 'All servers', detail: '10.10.0.0/16, 10.20.0.0/16', ...system },
    { type: 'connector', iface: null, name: 'AWS (production)', detail: 'Amazon Web Services · 3 regions', ...owned(priya) },
    { type: 'sensor', iface: null, name: 'Nessus scanner DC-1', detail: 'Nessus 10.8 · linked', ...system },
  ])
}

/** A signed-in user's own sample objects, one of each kind, so that a transfer shows. */
function sampleObjectsFor(user: Person, now: number): InstanceObject[] {
  const first = user.name.split(/\s+/)[0] || user.name
  const mine = { owner: user.sub, ownerLabel: null }
  return withIds([
    { type: 'scan_schedule', iface: 'vm', name: `${first}’s branch office scan`, detail: 'Weekly, Wednesday 02:00 · 10.60.0.0/22', status: 'Completed', lastRun: now - 3 * DAY, ...mine },
    { type: 'scan_result', iface: 'vm', name: `${first}’s branch office scan`, detail: '1 critical · 6 high · 23 medium', status: 'Completed', lastRun: now - 3 * DAY, ...mine },
    { type: 'scan_template', iface: 'vm', name: `${first}’s quick discovery`, detail: 'Based on Host Discovery', ...mine },
    { type: 'dashboard', iface: 'vm', name: `${first}’s remediation board`, detail: '4 widgets', ...mine },
    { type: 'saved_search', iface: 'vm', name: `${first}’s unpatched browsers`, detail: 'plugin_family:"Windows" AND name:*browser*', ...mine },
    { type: 'scan_schedule', iface: 'was', name: `${first}’s staging web app`, detail: 'On demand · https://staging.customer.example', status: 'Completed', lastRun: now - 6 * DAY, ...mine },
    { type: 'scan_result', iface: 'was', name: `${first}’s staging web app`, detail: '0 critical · 1 high · 4 medium', status: 'Completed', lastRun: now - 6 * DAY, ...mine },
    { type: 'dashboard', iface: 'was', name: `${first}’s web findings`, detail: '2 widgets', ...mine },
    { type: 'saved_search', iface: 'was', name: `${first}’s XSS on staging`, detail: 'category:xss AND target:staging*', ...mine },
    { type: 'scan_schedule', iface: 'cs', name: `${first}’s build images`, detail: 'On push · ci/build-*', status: 'Completed', lastRun: now - 1 * DAY, ...mine },
    { type: 'scan_result', iface: 'cs', name: 'ci/build-runner:1.9', detail: '0 critical · 2 high · malware: none', status: 'Completed', lastRun: now - 1 * DAY, ...mine },
    { type: 'dashboard', iface: 'cs', name: `${first}’s image trends`, detail: '2 widgets', ...mine },
    { type: 'saved_search', iface: 'cs', name: `${first}’s high-risk base images`, detail: 'risk_score>=7', ...mine },
    { type: 'managed_credential', iface: null, name: `SSH key (${first})`, detail: 'SSH · public key · linux-prod', ...mine },
    { type: 'tag', iface: null, name: 'Owner: Branch IT', detail: 'Rule: ipv4 in 10.60.0.0/22', ...mine },
    { type: 'recast_rule', iface: null, name: 'Recast: OpenSSH info leak to Low', detail: 'Plugin 90317 · recast to Low', ...mine },
    { type: 'exclusion', iface: null, name: 'Branch VoIP phones', detail: 'Always · 10.60.3.0/24', ...mine },
    { type: 'system_target_group', iface: null, name: 'Branch offices', detail: '10.60.0.0/16', ...mine },
    { type: 'user_target_group', iface: null, name: `${first}’s lab hosts`, detail: '10.99.0.10–10.99.0.40', ...mine },
    { type: 'connector', iface: null, name: 'Azure (branch)', detail: 'Microsoft Azure · 1 subscription', ...mine },
    { type: 'sensor', iface: null, name: 'Nessus Agent group: branch laptops', detail: '42 agents', ...mine },
  ])
}
