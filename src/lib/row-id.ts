/** The largest integer id a row has: the id columns are PostgreSQL's `integer` (32-bit). */
export const MAX_ROW_ID = 2_147_483_647

/**
 * An integer id from text (a path or a filter), or null when it cannot name a row: not
 * plain digits, or outside the column's range (which PostgreSQL refuses with an error, a 500,
 * where the answer is "no such row").
 */
export function rowId(text: string): number | null {
  if (!/^\d{1,10}$/.test(text)) return null
  const id = Number(text)
  return id >= 1 && id <= MAX_ROW_ID ? id : null
}
