/**
 * Text for a LIKE pattern, matching itself: `\`, `%` and `_` escaped with a backslash (the
 * queries say `escape '\'`, which both SQLite and PostgreSQL understand).
 */
export function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`)
}
