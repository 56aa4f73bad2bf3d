// Licensed app codes (API.md) and the labels the guide uses, in the order single sign-on
// prefers them.
export const LICENSED_APPS = [
  { code: 'vm', label: 'Vulnerability Management' },
  { code: 'was', label: 'Web Application Scanning' },
  { code: 'cs', label: 'Container Security' },
] as const

export type LicensedAppCode = (typeof LICENSED_APPS)[number]['code']
export const LICENSED_APP_CODES = LICENSED_APPS.map((a) => a.code) as LicensedAppCode[]

export function appLabel(code: string): string {
  return LICENSED_APPS.find((a) => a.code === code)?.label ?? code
}

export function parseApps(stored: string): LicensedAppCode[] {
  return stored.split(',').filter((c): c is LicensedAppCode => (LICENSED_APP_CODES as string[]).includes(c))
}

/** Stored form: known codes, de-duplicated, in the canonical order. */
export function formatApps(codes: readonly string[]): string {
  return LICENSED_APP_CODES.filter((c) => codes.includes(c)).join(',')
}
