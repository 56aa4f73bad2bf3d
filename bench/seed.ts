// Bulk data for the benchmarks: 100,000 realistic accounts straight into the SQLite file.
import crypto from 'node:crypto'
import SQLite from 'better-sqlite3'
import { searchTextOf, utilizationOf } from '../src/areas/accounts/repository.ts'

const WORDS = ['Acme', 'Bluefin', 'Cedar', 'Delta', 'Evergreen', 'Fjord', 'Golden', 'Harbor', 'Iron', 'Juniper', 'Kestrel', 'Lumen', 'Maple', 'North', 'Orchid', 'Pacific', 'Quarry', 'River', 'Saffron', 'Tide', 'Umbra', 'Vantage', 'Willow', 'Xenon', 'Yellow', 'Zephyr']
const KINDS = ['Logistics', 'Capital', 'Health', 'Freight', 'Utilities', 'Maritime', 'Dental', 'Insurance', 'Manufacturing', 'Retail', 'Aerospace', 'Education', 'Credit Union', 'Telecom', 'Biotech', 'Shipping', 'Builders', 'Library', 'Hospitality', 'Energy']
const REGIONS = ['US', 'EU', 'UK', 'AP', 'CA', 'ME']
const APPS = ['vm', 'vm,was', 'vm,was,cs', 'was', 'cs', 'vm,cs']

/** A small seeded generator (mulberry32): the same accounts on every run. */
function randomFrom(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!
}

export function seedAccounts(file: string, count: number): void {
  // Words drawn independently, so that a word is spread over the sort order as in real names
  // (a formula such as i % 26 would tie the second word to the first).
  const pick = randomFrom(42)
  const db = new SQLite(file)
  db.pragma('journal_mode = WAL')
  const insert = db.prepare(`insert into accounts (uuid, container_name, custom_name, site_id, region, licensed_apps, licensed_assets,
    licensed_assets_limit, license_utilization, license_expiration_date, notes, domains, search_text, created_at, modified_at)
    values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?)`)
  const now = Date.now()
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const name = `${pick(WORDS)} ${pick(WORDS)} ${pick(KINDS)} ${i}`
      const a = {
        container_name: name,
        custom_name: i % 5 === 0 ? `${pick(WORDS)} managed ${i}` : null,
        site_id: `${REGIONS[i % REGIONS.length]}-${String(i).padStart(6, '0')}`,
        licensed_apps: APPS[i % APPS.length]!,
        notes: i % 3 === 0 ? `Contact ${pick(WORDS)} team; ticket ${i * 17}` : '',
      }
      const assets = (i * 37) % 5000
      const limit = 1000 + ((i * 91) % 5000)
      insert.run(crypto.randomUUID(), a.container_name, a.custom_name, a.site_id, REGIONS[i % REGIONS.length], a.licensed_apps, assets, limit,
        utilizationOf(assets, limit), now + (((i * 53) % 800) - 100) * 86_400_000, a.notes, searchTextOf(a), now, now)
    }
  })()
  db.close()
}
