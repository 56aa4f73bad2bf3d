import { PORTAL_CONTAINER_UUID } from '../../lib/container.ts'
import path from 'node:path'
import type { Kysely } from 'kysely'
import type { Database } from '../../db/schema.ts'
import type { Actor } from '../../lib/actor.ts'
import { z } from 'zod'
import { NotFoundError, ValidationError } from '../../lib/errors.ts'
import { PngError, checkLogoPng, encodeRgba, pngError, type CheckedPng } from '../../lib/png.ts'
import { uuid } from '../../lib/tokens.ts'
import { audit } from '../audit/service.ts'
import * as repo from './repository.ts'

/**
 * Tenable's logo objects carry the uuid of the container (the MSSP's own tenant) that owns
 * them. This portal is one container, so every logo reports this fixed value.
 */
export { PORTAL_CONTAINER_UUID }

export const nameSchema = z
  .string()
  .trim()
  .min(1, 'Enter a name for the logo.')
  .max(100, 'The name can be at most 100 characters.')

/** One uploaded file as the routes hand it over. */
export interface UploadedFile {
  filename: string
  data: Buffer
  /** True when the file was larger than the upload limit (and cut). */
  truncated: boolean
}

/** What a logo form or API call sent: text fields and at most one file. */
export interface LogoForm {
  name: string | undefined
  /** undefined: no file part at all (or an empty file input); 'several': more than one. */
  file: UploadedFile | undefined | 'several' | 'not-a-file'
  /** The Edit Logo form's ✕ was used: a new file is required. */
  replace: boolean
}

/** A file name safe to keep and show: the last path segment, printable, at most 200 characters. */
export function cleanFilename(name: string): string {
  const base = path.posix.basename(name.replace(/\\/g, '/'))
  const printable = base.replace(/[\u0000-\u001f\u007f<>"]/g, '').trim().slice(-200)
  return printable || 'logo.png'
}

function checkFile(file: LogoForm['file']): CheckedPng {
  if (file === undefined) throw pngError('missing')
  if (file === 'several') throw new PngError('missing', 'Upload one .png file only.')
  if (file === 'not-a-file') throw pngError('missing')
  if (file.truncated) throw pngError('file-too-large')
  return checkLogoPng(file.data)
}

interface Checked {
  name?: string
  image?: CheckedPng & { filename: string }
}

/** Checks a form; `requireFile` for a new logo (or a removed file). Throws ValidationError. */
function checkForm(form: LogoForm, opts: { requireName: boolean; requireFile: boolean }): Checked {
  const errors: Record<string, string> = {}
  const out: Checked = {}
  if (form.name !== undefined || opts.requireName) {
    const parsed = nameSchema.safeParse(form.name ?? '')
    if (parsed.success) out.name = parsed.data
    else errors.name = parsed.error.issues[0]!.message
  }
  if (form.file !== undefined || opts.requireFile) {
    try {
      const checked = checkFile(form.file)
      out.image = { ...checked, filename: cleanFilename((form.file as UploadedFile).filename) }
    } catch (err) {
      if (!(err instanceof PngError)) throw err
      errors.logo = err.message
    }
  }
  if (Object.keys(errors).length) throw new ValidationError(errors, 'The logo was not saved. Correct the highlighted fields.')
  return out
}

/** The messages of a ValidationError in one line (for the API's 400 answers). */
export function describeErrors(err: ValidationError): string {
  return Object.values(err.fieldErrors).join(' ')
}

/** Throws 404 unless the logo exists. */
export async function requireLogo(db: Kysely<Database>, logoUuid: string): Promise<repo.LogoRow> {
  const logo = z.uuid().safeParse(logoUuid).success ? await repo.findLogoByUuid(db, logoUuid) : undefined
  if (!logo) throw new NotFoundError('This logo does not exist.')
  return logo
}

export async function createLogo(db: Kysely<Database>, actor: Actor, form: LogoForm): Promise<repo.LogoRow> {
  const checked = checkForm(form, { requireName: true, requireFile: true })
  const now = Date.now()
  const image = checked.image!
  return db.transaction().execute(async (trx) => {
    const logo = await repo.insertLogo(trx, {
      uuid: uuid(),
      name: checked.name!,
      filename: image.filename,
      png: image.png,
      width: image.width,
      height: image.height,
      created_by: actor.user.id,
      created_at: now,
      updated_at: now,
    })
    await audit(trx, actor, { action: 'logo.create', target: { type: 'logo', id: logo.uuid, name: logo.name }, fields: { filename: logo.filename, width: logo.width, height: logo.height } })
    return logo
  })
}

/**
 * Renames a logo and/or replaces its file. Without a file the current one stays, unless
 * the form says it was removed (`replace`), which then requires a new one.
 */
export async function editLogo(db: Kysely<Database>, actor: Actor, logo: repo.LogoRow, form: LogoForm, opts: { requireName?: boolean } = {}): Promise<repo.LogoRow> {
  const checked = checkForm(form, { requireName: opts.requireName ?? false, requireFile: form.replace })
  const changes: Parameters<typeof repo.updateLogo>[2] = { updated_at: Date.now() }
  if (checked.name !== undefined) changes.name = checked.name
  if (checked.image) Object.assign(changes, { png: checked.image.png, width: checked.image.width, height: checked.image.height, filename: checked.image.filename })
  return db.transaction().execute(async (trx) => {
    const updated = await repo.updateLogo(trx, logo.id, changes)
    await audit(trx, actor, {
      action: 'logo.update',
      target: { type: 'logo', id: logo.uuid, name: updated.name },
      fields: { renamed: updated.name !== logo.name, old_name: updated.name !== logo.name ? logo.name : null, file_replaced: Boolean(checked.image), filename: updated.filename },
    })
    return updated
  })
}

/** Deletes a logo after taking it off every account that shows it; returns that count. */
export async function deleteLogo(db: Kysely<Database>, actor: Actor, logo: repo.LogoRow): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const accounts = await repo.clearLogoFromAccounts(trx, logo.id, Date.now())
    await repo.deleteLogo(trx, logo.id)
    await audit(trx, actor, { action: 'logo.delete', target: { type: 'logo', id: logo.uuid, name: logo.name }, fields: { accounts } })
    return accounts
  })
}

/** Tenable's logo object (API.md). */
export function toApiLogo(logo: Pick<repo.LogoRow, 'uuid' | 'name' | 'filename'>) {
  return { uuid: logo.uuid, container_uuid: PORTAL_CONTAINER_UUID, name: logo.name, filename: logo.filename }
}

// ---------------------------------------------------------------------------------------
// Demo logos, drawn with a tiny 5 x 7 pixel font so that the demo has something to show.

const FONT: Record<string, string[]> = {
  A: ['01110', '10001', '10001', '11111', '10001', '10001', '10001'],
  B: ['11110', '10001', '10001', '11110', '10001', '10001', '11110'],
  C: ['01111', '10000', '10000', '10000', '10000', '10000', '01111'],
  D: ['11110', '10001', '10001', '10001', '10001', '10001', '11110'],
  E: ['11111', '10000', '10000', '11110', '10000', '10000', '11111'],
  G: ['01111', '10000', '10000', '10011', '10001', '10001', '01111'],
  H: ['10001', '10001', '10001', '11111', '10001', '10001', '10001'],
  I: ['11111', '00100', '00100', '00100', '00100', '00100', '11111'],
  L: ['10000', '10000', '10000', '10000', '10000', '10000', '11111'],
  M: ['10001', '11011', '10101', '10101', '10001', '10001', '10001'],
  N: ['10001', '11001', '10101', '10011', '10001', '10001', '10001'],
  O: ['01110', '10001', '10001', '10001', '10001', '10001', '01110'],
  R: ['11110', '10001', '10001', '11110', '10100', '10010', '10001'],
  S: ['01111', '10000', '10000', '01110', '00001', '00001', '11110'],
  T: ['11111', '00100', '00100', '00100', '00100', '00100', '00100'],
  U: ['10001', '10001', '10001', '10001', '10001', '10001', '01110'],
  W: ['10001', '10001', '10001', '10101', '10101', '11011', '10001'],
  X: ['10001', '10001', '01010', '00100', '01010', '10001', '10001'],
  Y: ['10001', '10001', '01010', '00100', '00100', '00100', '00100'],
  ' ': ['000', '000', '000', '000', '000', '000', '000'],
}

type Rgba = [number, number, number, number]

interface DemoLogo {
  name: string
  filename: string
  text: string
  scale: number
  ink: Rgba
  /** Background; transparent when alpha is 0. */
  paper: Rgba
  /** A round badge before the word, in this colour (its core in the ink colour). */
  mark?: Rgba
}

const DEMO_LOGOS: DemoLogo[] = [
  { name: 'Acme Corporation', filename: 'acme-corporation.png', text: 'ACME', scale: 5, ink: [200, 32, 46, 255], paper: [0, 0, 0, 0], mark: [200, 32, 46, 255] },
  { name: 'Globex', filename: 'globex-wordmark.png', text: 'GLOBEX', scale: 4, ink: [255, 255, 255, 255], paper: [23, 78, 166, 255] },
  { name: 'Initech (white, for dark headers)', filename: 'initech-white.png', text: 'INITECH', scale: 4, ink: [255, 255, 255, 255], paper: [0, 0, 0, 0], mark: [255, 214, 102, 255] },
  { name: 'Northwind Traders', filename: 'northwind.png', text: 'NORTHWIND', scale: 3, ink: [6, 118, 71, 255], paper: [0, 0, 0, 0], mark: [16, 24, 40, 255] },
]

/** Draws a wordmark (an optional round badge, then the text) within 246 x 52 pixels. */
export function drawWordmark(logo: Omit<DemoLogo, 'name' | 'filename'>): Buffer {
  const { scale, text } = logo
  const glyphs = [...text].map((c) => FONT[c] ?? FONT[' ']!)
  const textWidth = glyphs.reduce((w, g) => w + (g[0]!.length + 1) * scale, 0) - scale
  const pad = 6
  const markSize = logo.mark ? 7 * scale : 0
  const width = Math.min(246, pad * 2 + (markSize ? markSize + 2 * scale : 0) + textWidth)
  const height = Math.min(52, Math.max(7 * scale + pad * 2, 24))
  const rgba = Buffer.alloc(width * height * 4)
  const set = (x: number, y: number, c: Rgba) => {
    if (x < 0 || y < 0 || x >= width || y >= height) return
    rgba.set(c, (y * width + x) * 4)
  }
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) set(x, y, logo.paper)
  const top = Math.floor((height - 7 * scale) / 2)
  let x0 = pad
  if (logo.mark) {
    // A ring with a core in the ink colour: reads as a little brand mark.
    const r = markSize / 2
    for (let y = 0; y < markSize; y++) {
      for (let x = 0; x < markSize; x++) {
        const d = Math.hypot(x + 0.5 - r, y + 0.5 - r)
        if (d <= r && d > r * 0.45) set(x0 + x, top + y, logo.mark)
        else if (d <= r * 0.45) set(x0 + x, top + y, logo.ink)
      }
    }
    x0 += markSize + 2 * scale
  }
  for (const g of glyphs) {
    for (let row = 0; row < 7; row++) {
      for (let col = 0; col < g[row]!.length; col++) {
        if (g[row]![col] !== '1') continue
        for (let dy = 0; dy < scale; dy++) for (let dx = 0; dx < scale; dx++) set(x0 + col * scale + dx, top + row * scale + dy, logo.ink)
      }
    }
    x0 += (g[0]!.length + 1) * scale
  }
  return encodeRgba(width, height, rgba)
}

/**
 * Creates the demo's logos (generated, each within 246 x 52 pixels; one white on a
 * transparent background) and returns their ids. Called by the demo seed.
 */
export async function seedDemoLogos(db: Kysely<Database>, createdBy: number): Promise<number[]> {
  const ids: number[] = []
  const now = Date.now()
  for (const demo of DEMO_LOGOS) {
    const image = checkLogoPng(drawWordmark(demo))
    const logo = await repo.insertLogo(db, {
      uuid: uuid(),
      name: demo.name,
      filename: demo.filename,
      png: image.png,
      width: image.width,
      height: image.height,
      created_by: createdBy,
      created_at: now,
      updated_at: now,
    })
    ids.push(logo.id)
  }
  return ids
}
