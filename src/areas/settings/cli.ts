import type { Kysely } from 'kysely'
import type { Database } from '../../db/schema.ts'
import { ValidationError } from '../../lib/errors.ts'
import { addDomain, listDomains, removeDomain } from './service.ts'

export const DOMAINS_USAGE = `Usage: mssp-portal domains <list | add DOMAIN | remove DOMAIN>

  list            print the approved domains and how many users are at each
  add DOMAIN      approve a domain (like example.com) for usernames name@DOMAIN
  remove DOMAIN   withdraw a domain; refused while any user's username is at it,
                  and for the last approved domain`

/**
 * `mssp-portal domains list | add DOMAIN | remove DOMAIN`, with the Settings page's rules.
 * Exit codes: 0 done, 1 refused by a rule (invalid, duplicate, in use, last), 2 usage.
 * The caller opens (and migrates) the database. Refusals go to `err` (default: `out`).
 */
export async function domainsCommand(db: Kysely<Database>, args: string[], out: (line: string) => void, err: (line: string) => void = out): Promise<number> {
  const [sub, ...rest] = args
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    out(DOMAINS_USAGE)
    return 0
  }
  const usage = (problem: string) => {
    err(`${problem}\n\n${DOMAINS_USAGE}`)
    return 2
  }
  try {
    switch (sub) {
      case 'list': {
        if (rest.length) return usage('domains list takes no arguments.')
        const domains = await listDomains(db)
        if (domains.length === 0) out('No approved domains.')
        const width = Math.max(0, ...domains.map((d) => d.domain.length))
        for (const d of domains) out(`${d.domain.padEnd(width)}  ${d.users} ${d.users === 1 ? 'user' : 'users'}`)
        return 0
      }
      case 'add': {
        if (rest.length !== 1) return usage('domains add needs exactly one DOMAIN.')
        const domain = await addDomain(db, 'cli', rest[0])
        out(`${domain} is now an approved domain.`)
        return 0
      }
      case 'remove': {
        if (rest.length !== 1) return usage('domains remove needs exactly one DOMAIN.')
        const domain = await removeDomain(db, 'cli', rest[0])
        out(`${domain} is no longer an approved domain.`)
        return 0
      }
      default:
        return usage(sub === undefined ? 'domains needs a subcommand.' : `Unknown domains subcommand: ${sub}`)
    }
  } catch (e) {
    if (e instanceof ValidationError) {
      err(Object.values(e.fieldErrors)[0] ?? e.message)
      return 1
    }
    throw e
  }
}
