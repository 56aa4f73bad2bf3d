// The instance's own copy of the role rules (docs/sso.md, "Roles inside the instance").
// A real instance does not share the portal's code: it reads the `role` claim's level
// and applies its own rules. Levels are Tenable's: 16, 24, 32, 40, 64.

export type RoleLevel = 16 | 24 | 32 | 40 | 64

export interface RoleRule {
  label: string
  /** Views dashboards and scan results (every role). */
  view: boolean
  /** Launches existing scans (the Launch button). */
  launchScans: boolean
  /** Creates scans, dashboards and saved searches, and edits their own. */
  createOwn: boolean
  /** Edits and launches everyone's scans, not only their own. */
  manageAllScans: boolean
  /** Sees the instance's settings (users, credentials, rules, connectors, sensors). */
  settings: boolean
  summary: string
}

export const ROLE_RULES: Record<RoleLevel, RoleRule> = {
  16: { label: 'Basic', view: true, launchScans: false, createOwn: false, manageAllScans: false, settings: false, summary: 'Views dashboards and scan results only.' },
  24: { label: 'VM Scan Operator', view: true, launchScans: true, createOwn: false, manageAllScans: false, settings: false, summary: 'As Basic, and launches scans.' },
  32: { label: 'VM Standard', view: true, launchScans: true, createOwn: true, manageAllScans: false, settings: false, summary: 'As VM Scan Operator, and creates and edits their own scans, dashboards and saved searches.' },
  40: { label: 'VM Scan Manager', view: true, launchScans: true, createOwn: true, manageAllScans: true, settings: false, summary: 'As VM Standard, and manages everyone’s scans.' },
  64: { label: 'Administrator', view: true, launchScans: true, createOwn: true, manageAllScans: true, settings: true, summary: 'Everything, including the instance’s settings.' },
}

export const ROLE_LEVELS = [16, 24, 32, 40, 64] as const

export function isRoleLevel(level: unknown): level is RoleLevel {
  return typeof level === 'number' && (ROLE_LEVELS as readonly number[]).includes(level)
}
