/**
 * Where to go after signing in: a path of this portal only. No scheme-relative URLs, no
 * backslashes, no whitespace or control characters (browsers drop tabs and newlines, so
 * `/\t/evil.example` would become `//evil.example`).
 */
export function safeNext(next: unknown, fallback = '/accounts'): string {
  if (typeof next !== 'string' || next.length > 2000) return fallback
  if (!/^\/(?![/\\])[^\s\x00-\x1f\x7f\\]*$/.test(next) || next.startsWith('/login')) return fallback
  return next
}
