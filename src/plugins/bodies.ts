import fp from 'fastify-plugin'
import multipart from '@fastify/multipart'
import type { FastifyRequest } from 'fastify'
import { HttpError } from '../lib/errors.ts'

// A NUL byte, or half of a surrogate pair: text no database should be handed (PostgreSQL
// refuses NUL; SQLite would store both and copy-to-postgres could not move them).
const BAD_TEXT = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

export function hasBadText(text: string): boolean {
  return BAD_TEXT.test(text)
}

/** A 400 naming the fields (as JSON Pointer paths) that hold such text. */
export class BadTextError extends HttpError {
  constructor(readonly errors: Array<{ path: string; message: string }>) {
    super(400, errors[0]!.message)
  }
}

const WHERE = { body: 'The field', query: 'The query parameter', params: 'The address part' } as const

/** A part that @fastify/multipart made: its text is its name, value and file name (not its bytes). */
function isMultipartPart(value: object): value is { fieldname?: unknown; value?: unknown; filename?: unknown } {
  return 'fields' in value && ('file' in value || 'value' in value) && 'fieldname' in value
}

/** The path of the first string (or key) holding bad text in a parsed body, query or params, or null. */
export function findBadText(root: unknown): string | null {
  // A loop, not recursion: a deeply nested JSON body must not overflow the stack.
  const stack: Array<[unknown, string]> = [[root, '']]
  while (stack.length) {
    const [value, path] = stack.pop()!
    if (typeof value === 'string') {
      if (hasBadText(value)) return path
    } else if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) stack.push([value[i], `${path}/${i}`])
    } else if (value && typeof value === 'object' && !Buffer.isBuffer(value)) {
      if (isMultipartPart(value)) {
        for (const text of [value.fieldname, value.value, value.filename]) if (typeof text === 'string' && hasBadText(text)) return path
        continue
      }
      for (const [key, item] of Object.entries(value)) {
        const at = `${path}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`
        if (hasBadText(key)) return at
        stack.push([item, at])
      }
    }
  }
  return null
}

function checkText(request: FastifyRequest): void {
  for (const where of ['params', 'query', 'body'] as const) {
    const path = findBadText(request[where])
    if (path === null) continue
    const name = path.split('/')[1] ?? ''
    throw new BadTextError([{ path, message: `${WHERE[where]}${name ? ` “${name.slice(0, 100)}”` : ''} holds a character that is not allowed (a NUL byte or an unpaired surrogate).` }])
  }
}

/**
 * Reading request bodies: multipart forms only on routes that declare `multipartOptions`
 * (their fields attached to the body as @fastify/multipart's attachFieldsToBody does), any
 * body that cannot be read a 400 (never a 5xx), and no NUL or lone surrogate in any text of
 * the body, query or params. Runs after the gate (authorization.ts), which answers before
 * any body is read.
 */
export default fp(async function bodies(app) {
  // Uploads are small: one file, size-limited before anything is decoded; short fields.
  await app.register(multipart, { limits: { fileSize: 256 * 1024, files: 1, fields: 20, parts: 21, fieldSize: 64 * 1024 } })

  app.addHook('preValidation', async (request) => {
    if (request.isMultipart()) await readMultipart(request)
    checkText(request)
  })
})

async function readMultipart(request: FastifyRequest): Promise<void> {
  const options = request.routeOptions.config.multipartOptions
  if (!options) throw new HttpError(415, 'This address does not take multipart/form-data.')
  // A multipart body is streamed, not read by Fastify: its limit is checked here.
  if (Number(request.headers['content-length']) > request.routeOptions.bodyLimit!) throw new HttpError(413, 'The request is larger than this address accepts.')
  try {
    for await (const part of request.parts(options)) {
      request.body = part.fields
      if (part.type === 'file') await part.toBuffer()
    }
  } catch (err) {
    // Limits reached keep their 413; anything else (a bad boundary, a truncated body) is the client's.
    if ((err as { statusCode?: number }).statusCode === 413) throw err
    request.log.info({ reason: (err as Error).message }, 'unreadable multipart body')
    throw new HttpError(400, 'The form data could not be read.')
  }
}
