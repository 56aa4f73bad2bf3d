import type { FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { NotFoundError } from '../../lib/errors.ts'
import * as repo from './repository.ts'
import type { LogoForm, UploadedFile } from './service.ts'

// What the Logos pages and the logo API share over HTTP: the multipart form as the service
// reads it, and the image as a response.

/**
 * @fastify/multipart options for routes that take a logo file: an oversized file is cut at
 * the limit and flagged (`file.truncated`) instead of failing the whole request before the
 * route runs, so that the form can say what was wrong.
 */
export const LOGO_UPLOAD_OPTIONS = { throwFileSizeLimit: false } as unknown as Record<string, never>

function fieldValue(v: unknown): unknown {
  if (Array.isArray(v)) return fieldValue(v[0])
  if (v && typeof v === 'object' && 'value' in v) return (v as { value: unknown }).value
  return v
}

interface MultipartFilePart {
  type: 'file'
  filename?: string
  _buf?: Buffer | null
  file?: { truncated?: boolean }
}

function isFilePart(v: unknown): v is MultipartFilePart {
  return Boolean(v) && typeof v === 'object' && (v as { type?: unknown }).type === 'file'
}

/** Reads a logo form from a multipart body (fields as `{ value }`) or a urlencoded one. */
export function readLogoForm(body: unknown, fileField = 'logo'): LogoForm {
  const b = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>
  const rawName = fieldValue(b.name)
  const name = typeof rawName === 'string' ? rawName : undefined
  const replace = fieldValue(b.replace) === '1'
  const part = b[fileField]
  let file: LogoForm['file']
  if (part === undefined) file = undefined
  else if (Array.isArray(part)) file = part.filter(isFilePart).length > 1 ? 'several' : isFilePart(part[0]) ? toUploaded(part[0]) : 'not-a-file'
  else if (isFilePart(part)) file = toUploaded(part)
  else file = typeof fieldValue(part) === 'string' && fieldValue(part) === '' ? undefined : 'not-a-file'
  // A file input left empty arrives as a file with no name and no bytes.
  if (file && typeof file === 'object' && file.filename === '' && file.data.length === 0) file = undefined
  return { name, file, replace }
}

function toUploaded(part: MultipartFilePart): UploadedFile {
  return { filename: part.filename ?? '', data: part._buf ?? Buffer.alloc(0), truncated: Boolean(part.file?.truncated) }
}

/** Sends a logo's stored (re-encoded) PNG, to a viewer allowed to see it (404 otherwise). */
export async function sendLogoImage(request: FastifyRequest, reply: FastifyReply, logoUuid: string) {
  const image = z.uuid().safeParse(logoUuid).success ? await repo.findLogoImage(request.server.db, request.auth!.user, logoUuid) : undefined
  if (!image) throw new NotFoundError('This logo does not exist.')
  const etag = `"${image.uuid}-${image.updated_at}"`
  // Revalidated every time (cheap with the ETag): a changed logo or a withdrawn account
  // assignment takes effect at once.
  reply.header('Cache-Control', 'private, no-cache').header('ETag', etag).header('X-Content-Type-Options', 'nosniff')
  if (request.headers['if-none-match'] === etag) return reply.code(304).send()
  return reply.type('image/png').header('Content-Disposition', 'inline; filename="logo.png"').send(Buffer.from(image.png))
}
