// Display helpers shared by the views (dates in UTC, as the audit log stores them).

export function formatDate(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().slice(0, 10) : '—'
}

export function formatDateTime(ms: number | null | undefined): string {
  return ms ? `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC` : '—'
}

// One formatter for every call: toLocaleString builds a new one each time (slow in a table).
const numberFormat = new Intl.NumberFormat('en-US')
export function formatNumber(n: number): string {
  return numberFormat.format(n)
}

/** Whole days from now until `ms` (negative once past). */
export function daysUntil(ms: number | null | undefined, now = Date.now()): number | null {
  return ms ? Math.floor((ms - now) / 86_400_000) : null
}

/** A query string from a record, leaving out empty values. */
export function queryString(params: Record<string, string | number | undefined | null>): string {
  const qs = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') qs.set(k, String(v))
  const s = qs.toString()
  return s ? `?${s}` : ''
}
