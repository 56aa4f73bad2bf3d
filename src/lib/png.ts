// PNG logos: checked from the header bytes before anything is decoded, then decoded with
// pngjs (bounded), re-encoded, and only the re-encoded bytes are kept. Nothing the
// uploader wrote (ancillary chunks, trailing bytes, odd encodings) survives.
import zlib from 'node:zlib'
import { PNG } from 'pngjs'

export const MAX_LOGO_WIDTH = 246
export const MAX_LOGO_HEIGHT = 52
/** The upload limit given to @fastify/multipart (app.ts); mentioned in messages. */
export const MAX_LOGO_BYTES = 256 * 1024

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

export type PngProblem = 'missing' | 'empty' | 'file-too-large' | 'not-png' | 'dimensions' | 'damaged'

const MESSAGES: Record<Exclude<PngProblem, 'dimensions'>, string> = {
  missing: 'Choose a .png file to upload.',
  empty: 'The file is empty. Choose a .png file.',
  'file-too-large': `The file is too large: a logo file can be at most ${MAX_LOGO_BYTES / 1024} KB.`,
  'not-png': 'The file is not a PNG image. Only .png files are accepted.',
  damaged: 'The PNG file is damaged or incomplete (truncated). Save it again and upload the new file.',
}

/** A logo file the portal refuses, with a message for the person who uploaded it. */
export class PngError extends Error {
  constructor(
    readonly problem: PngProblem,
    message?: string,
  ) {
    super(message ?? MESSAGES[problem as Exclude<PngProblem, 'dimensions'>])
  }
}

export function pngError(problem: Exclude<PngProblem, 'dimensions'>): PngError {
  return new PngError(problem)
}

function dimensionsError(width: number, height: number): PngError {
  return new PngError('dimensions', `The image is ${width} x ${height} pixels. A logo can be at most ${MAX_LOGO_WIDTH} x ${MAX_LOGO_HEIGHT} pixels (width x height).`)
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** CRC-32 as PNG chunks use it (over the chunk type and data). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

export interface PngHeader {
  width: number
  height: number
  bitDepth: number
  colorType: number
  interlace: number
}

// Channels per colour type, and the bit depths each allows (PNG spec, 11.2.2).
const COLOR_TYPES: Record<number, { channels: number; depths: number[] }> = {
  0: { channels: 1, depths: [1, 2, 4, 8, 16] },
  2: { channels: 3, depths: [8, 16] },
  3: { channels: 1, depths: [1, 2, 4, 8] },
  4: { channels: 2, depths: [8, 16] },
  6: { channels: 4, depths: [8, 16] },
}

/**
 * Reads the signature and the IHDR chunk (the first 33 bytes) and checks the size limits.
 * Decodes nothing: a tiny file declaring 100000 x 100000 pixels is refused here.
 */
export function readPngHeader(bytes: Buffer): PngHeader {
  if (bytes.length === 0) throw pngError('empty')
  if (bytes.length < 8 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) {
    // A PNG cut short inside its signature is still recognisably a damaged PNG.
    if (bytes.length < 8 && PNG_SIGNATURE.subarray(0, bytes.length).equals(bytes)) throw pngError('damaged')
    throw pngError('not-png')
  }
  if (bytes.length < 33) throw pngError('damaged')
  const length = bytes.readUInt32BE(8)
  const type = bytes.toString('latin1', 12, 16)
  if (type !== 'IHDR' || length !== 13) throw pngError('damaged')
  if (crc32(bytes.subarray(12, 29)) !== bytes.readUInt32BE(29)) throw pngError('damaged')
  const width = bytes.readUInt32BE(16)
  const height = bytes.readUInt32BE(20)
  const header = { width, height, bitDepth: bytes[24]!, colorType: bytes[25]!, interlace: bytes[28]! }
  if (width === 0 || height === 0) throw pngError('damaged')
  if (width > MAX_LOGO_WIDTH || height > MAX_LOGO_HEIGHT) throw dimensionsError(width, height)
  const color = COLOR_TYPES[header.colorType]
  if (!color || !color.depths.includes(header.bitDepth) || bytes[26] !== 0 || bytes[27] !== 0 || header.interlace > 1) throw pngError('damaged')
  return header
}

/**
 * Walks the chunks after IHDR: each must fit in the file and carry a correct CRC, and the
 * image data (IDAT) must inflate to no more than the header's size allows. This bounds
 * the work pngjs does next (it inflates interlaced images without a limit). Returns where
 * IEND ends: anything after it is ignored.
 */
function checkChunks(bytes: Buffer, header: PngHeader): number {
  let offset = 33
  const idat: Buffer[] = []
  let ended = false
  while (offset < bytes.length) {
    if (offset + 12 > bytes.length) throw pngError('damaged')
    const length = bytes.readUInt32BE(offset)
    if (length > bytes.length - offset - 12) throw pngError('damaged')
    const type = bytes.toString('latin1', offset + 4, offset + 8)
    const crc = bytes.readUInt32BE(offset + 8 + length)
    if (crc32(bytes.subarray(offset + 4, offset + 8 + length)) !== crc) throw pngError('damaged')
    if (type === 'IDAT') idat.push(bytes.subarray(offset + 8, offset + 8 + length))
    offset += 12 + length
    if (type === 'IEND') {
      ended = true
      break
    }
  }
  if (!ended || idat.length === 0) throw pngError('damaged')
  const { channels } = COLOR_TYPES[header.colorType]!
  const rowBytes = Math.ceil((header.width * channels * header.bitDepth) / 8) + 1
  // Adam7 adds at most a filter byte and a partial byte to each of its (fewer than 2h + 14) rows.
  const limit = rowBytes * header.height + (header.interlace ? 2 * (2 * header.height + 14) : 0)
  try {
    zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: limit })
  } catch {
    throw pngError('damaged')
  }
  return offset
}

export interface CheckedPng {
  /** The re-encoded PNG (8-bit RGBA), the only bytes worth storing. */
  png: Buffer
  width: number
  height: number
}

/**
 * The whole rule for a logo file: a PNG of at most 246 x 52 pixels that decodes cleanly.
 * Throws PngError with a message fit for the uploader.
 */
export function checkLogoPng(bytes: Buffer): CheckedPng {
  const header = readPngHeader(bytes)
  const end = checkChunks(bytes, header)
  let decoded: PNG
  try {
    decoded = PNG.sync.read(bytes.subarray(0, end))
  } catch {
    throw pngError('damaged')
  }
  if (decoded.width !== header.width || decoded.height !== header.height) throw pngError('damaged')
  const png = PNG.sync.write(decoded, { colorType: 6, inputColorType: 6, bitDepth: 8, inputHasAlpha: true })
  return { png, width: decoded.width, height: decoded.height }
}

/** Encodes RGBA pixels (width * height * 4 bytes) as a PNG. */
export function encodeRgba(width: number, height: number, rgba: Buffer): Buffer {
  const png = new PNG({ width, height })
  rgba.copy(png.data)
  return PNG.sync.write(png)
}

/** Decodes a PNG to its size and RGBA pixels (for tests and checks). */
export function decodePng(bytes: Buffer): { width: number; height: number; data: Buffer } {
  const { width, height, data } = PNG.sync.read(bytes)
  return { width, height, data }
}
