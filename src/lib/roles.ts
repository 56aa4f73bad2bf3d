// Tenable's permission levels, by the guide's names.
export const ROLES = [
  { level: 16, key: 'basic', label: 'Basic' },
  { level: 24, key: 'scan-operator', label: 'VM Scan Operator' },
  { level: 32, key: 'standard', label: 'VM Standard' },
  { level: 40, key: 'scan-manager', label: 'VM Scan Manager' },
  { level: 64, key: 'administrator', label: 'Administrator' },
] as const

export type RoleKey = (typeof ROLES)[number]['key']
export const ADMINISTRATOR = 64

export function roleLabel(level: number): string {
  return ROLES.find((r) => r.level === level)?.label ?? 'Unknown'
}

export function isRole(level: number): boolean {
  return ROLES.some((r) => r.level === level)
}

export function roleLevel(key: RoleKey): number {
  return ROLES.find((r) => r.key === key)!.level
}

/**
 * What each role may do, in the portal and inside a customer's instance (single sign-on
 * carries the role). One table: the Role Permissions pane and the instance both read it.
 */
export const ROLE_PERMISSIONS: Record<number, { portal: string; instance: string; can: { viewScans: boolean; runScans: boolean; editScans: boolean; manageOthersScans: boolean; manageInstance: boolean } }> = {
  16: {
    portal: 'Sees the accounts assigned to them; single sign-on into those instances; own My Account.',
    instance: 'Views dashboards and scan results. Cannot run or change scans.',
    can: { viewScans: true, runScans: false, editScans: false, manageOthersScans: false, manageInstance: false },
  },
  24: {
    portal: 'As Basic.',
    instance: 'As Basic, and runs existing scans.',
    can: { viewScans: true, runScans: true, editScans: false, manageOthersScans: false, manageInstance: false },
  },
  32: {
    portal: 'As Basic.',
    instance: 'As VM Scan Operator, and creates and edits their own scans, dashboards and saved searches.',
    can: { viewScans: true, runScans: true, editScans: true, manageOthersScans: false, manageInstance: false },
  },
  40: {
    portal: 'As Basic.',
    instance: 'As VM Standard, and manages every user’s scans and schedules.',
    can: { viewScans: true, runScans: true, editScans: true, manageOthersScans: true, manageInstance: false },
  },
  64: {
    portal: 'Everything: every account, users, logos, settings, the audit log, assisting users.',
    instance: 'Everything, including the instance’s own settings.',
    can: { viewScans: true, runScans: true, editScans: true, manageOthersScans: true, manageInstance: true },
  },
}
