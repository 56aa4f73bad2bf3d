// The logo file rules (src/lib/png.ts) against crafted files built here in code.
import zlib from 'node:zlib'
import t, { type Test } from 'tap'
import { PNG } from 'pngjs'
import { MAX_LOGO_HEIGHT, MAX_LOGO_WIDTH, PngError, checkLogoPng, crc32, decodePng, readPngHeader } from '../../src/lib/png.ts'

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

function chunk(type: string, data: Buffer = Buffer.alloc(0)): Buffer {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([len, body, crc])
}

function ihdr(width: number, height: number, opts: { depth?: number; colorType?: number; interlace?: number } = {}): Buffer {
  const d = Buffer.alloc(13)
  d.writeUInt32BE(width, 0)
  d.writeUInt32BE(height, 4)
  d[8] = opts.depth ?? 8
  d[9] = opts.colorType ?? 6
  d[12] = opts.interlace ?? 0
  return chunk('IHDR', d)
}

/** A real PNG made with pngjs: a gradient so that pixels can be compared. */
function makePng(width: number, height: number, opts: { colorType?: 0 | 2 | 4 | 6; bitDepth?: 8 | 16 } = {}): Buffer {
  const png = new PNG({ width, height })
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4
      png.data[i] = (x * 7) & 255
      png.data[i + 1] = (y * 11) & 255
      png.data[i + 2] = 120
      png.data[i + 3] = x % 2 ? 255 : 128
    }
  }
  return PNG.sync.write(png, { colorType: opts.colorType ?? 6, bitDepth: opts.bitDepth ?? 8 })
}

function refused(t: Test, bytes: Buffer, problem: string, message: RegExp, name: string) {
  try {
    checkLogoPng(bytes)
    t.fail(`${name}: accepted`)
  } catch (err) {
    t.ok(err instanceof PngError, `${name}: a PngError`)
    t.equal((err as PngError).problem, problem, `${name}: ${problem}`)
    t.match((err as Error).message, message, `${name}: says why`)
  }
}

t.test('valid PNGs at the limit and at 1 x 1 are accepted and re-encoded', async (t) => {
  for (const [w, h] of [[MAX_LOGO_WIDTH, MAX_LOGO_HEIGHT], [1, 1], [MAX_LOGO_WIDTH, 1], [1, MAX_LOGO_HEIGHT]] as const) {
    const input = makePng(w, h)
    const out = checkLogoPng(input)
    t.equal(out.width, w, `${w} x ${h}: the width is kept`)
    t.equal(out.height, h, `${w} x ${h}: the height is kept`)
    const decoded = decodePng(out.png)
    t.equal(decoded.width, w, `${w}x${h} decodes at its width`)
    t.equal(decoded.height, h, `${w}x${h} decodes at its height`)
    t.ok(decoded.data.equals(decodePng(input).data), `${w}x${h}: same pixels after re-encoding`)
  }
})

t.test('other colour types and 16-bit depth are accepted and stored as 8-bit RGBA', async (t) => {
  for (const colorType of [0, 2, 4, 6] as const) {
    for (const bitDepth of [8, 16] as const) {
      const out = checkLogoPng(makePng(40, 20, { colorType, bitDepth }))
      t.same([out.width, out.height], [40, 20], `colour type ${colorType}, ${bitDepth}-bit`)
      t.equal(out.png[24], 8, 'stored 8-bit')
      t.equal(out.png[25], 6, 'stored as RGBA')
    }
  }
})

t.test('whatever else the file carried is dropped by re-encoding', async (t) => {
  const input = makePng(10, 10)
  // Insert a text chunk after IHDR and junk after IEND.
  const withText = Buffer.concat([input.subarray(0, 33), chunk('tEXt', Buffer.from('Comment\0<script>alert(1)</script>')), input.subarray(33), Buffer.from('trailing junk')])
  const out = checkLogoPng(withText)
  t.notOk(out.png.includes(Buffer.from('tEXt')), 'no text chunk')
  t.notOk(out.png.includes(Buffer.from('<script>')), 'no text')
  t.notOk(out.png.includes(Buffer.from('trailing junk')), 'no trailing bytes')
})

t.test('too wide or too tall is refused with the sizes', async (t) => {
  refused(t, makePng(247, 52), 'dimensions', /247 x 52 pixels.*at most 246 x 52/, '247x52')
  refused(t, makePng(246, 53), 'dimensions', /246 x 53 pixels.*at most 246 x 52/, '246x53')
})

t.test('a tiny file declaring 100000 x 100000 is refused from its header, never decoded', async (t) => {
  const bomb = Buffer.concat([SIGNATURE, ihdr(100_000, 100_000)])
  t.equal(bomb.length, 33, 'only the signature and IHDR')
  t.same(readPngHeader(Buffer.concat([SIGNATURE, ihdr(200, 50)])).width, 200, 'the header reader reads a valid header')
  t.equal(
    (() => {
      try {
        readPngHeader(bomb)
      } catch (err) {
        return (err as PngError).problem
      }
    })(),
    'dimensions',
    'refused by the header reader alone',
  )
  const originalRead = PNG.sync.read
  let decoded = false
  PNG.sync.read = ((...args: Parameters<typeof originalRead>) => {
    decoded = true
    return originalRead(...args)
  }) as typeof originalRead
  t.teardown(() => {
    PNG.sync.read = originalRead
  })
  refused(t, bomb, 'dimensions', /100000 x 100000 pixels/, '100000x100000')
  // Even with image data that would inflate to gigabytes, it stops at the header.
  refused(t, Buffer.concat([bomb, chunk('IDAT', zlib.deflateSync(Buffer.alloc(1024 * 1024))), chunk('IEND')]), 'dimensions', /100000 x 100000/, 'with data')
  t.notOk(decoded, 'pngjs never saw it')
})

t.test('image data that inflates beyond what the header allows is refused (a zlib bomb)', async (t) => {
  for (const interlace of [0, 1]) {
    const bomb = Buffer.concat([SIGNATURE, ihdr(10, 10, { interlace }), chunk('IDAT', zlib.deflateSync(Buffer.alloc(50 * 1024 * 1024))), chunk('IEND')])
    t.ok(bomb.length < 100 * 1024, `small on disk (${bomb.length} bytes)`)
    refused(t, bomb, 'damaged', /damaged/, `interlace ${interlace}`)
  }
})

t.test('damaged, truncated, foreign and empty files are refused with clear messages', async (t) => {
  const good = makePng(100, 40)
  refused(t, good.subarray(0, Math.floor(good.length / 2)), 'damaged', /damaged or incomplete/, 'truncated half-way')
  refused(t, good.subarray(0, good.length - 12), 'damaged', /damaged or incomplete/, 'without IEND')
  refused(t, good.subarray(0, 20), 'damaged', /damaged or incomplete/, 'cut inside IHDR')
  refused(t, good.subarray(0, 5), 'damaged', /damaged or incomplete/, 'cut inside the signature')
  refused(t, Buffer.concat([SIGNATURE, ihdr(100, 40)]), 'damaged', /damaged or incomplete/, 'header only, valid size')
  const badCrc = Buffer.from(good)
  badCrc[30] = badCrc[30]! ^ 0xff
  refused(t, badCrc, 'damaged', /damaged/, 'IHDR with a wrong CRC')
  const flipped = Buffer.from(good)
  flipped[60] = flipped[60]! ^ 0xff
  refused(t, flipped, 'damaged', /damaged/, 'a flipped byte in the image data')
  refused(t, Buffer.concat([SIGNATURE, ihdr(0, 10)]), 'damaged', /damaged/, 'zero width')
  refused(t, Buffer.concat([SIGNATURE, ihdr(10, 10, { colorType: 2, depth: 4 })]), 'damaged', /damaged/, 'impossible bit depth')

  const jpeg = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]), Buffer.from('JFIF\0\x01\x01\0\0\x01\0\x01\0\0', 'latin1'), Buffer.alloc(200, 0x55), Buffer.from([0xff, 0xd9])])
  refused(t, jpeg, 'not-png', /not a PNG image/, 'JPEG bytes named .png')
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="246" height="52"><script>alert(1)</script><rect width="246" height="52"/></svg>')
  refused(t, svg, 'not-png', /not a PNG image/, 'SVG text named .png')
  refused(t, Buffer.from('GIF89a\x01\0\x01\0', 'latin1'), 'not-png', /not a PNG image/, 'GIF')
  refused(t, Buffer.alloc(0), 'empty', /empty/, 'empty file')
})
