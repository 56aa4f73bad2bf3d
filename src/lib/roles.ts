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
