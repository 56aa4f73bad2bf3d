import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { databaseRateLimitStore } from '../../ops/rate-limit-store.ts'
import { ConflictError } from '../../lib/errors.ts'
import { actorOf, flash, redirect } from '../../plugins/session.ts'
import { CSV_COLUMNS, IMPORT_COLUMNS, MAX_IMPORT_BYTES, MAX_IMPORT_ROWS, type ImportPreview, accountsCsvStream, exportFilename, readImport, signImport, templateCsv, verifyImport } from './csv.ts'
import { appLabel } from './licensed-apps.ts'
import { confirmImportForm, listQuerySchema, toAccountQuery, uploadForm } from './forms.ts'
import { exportAccounts, importAccounts } from './service.ts'

/** Rows of a good file shown in the preview (all are imported). */
const PREVIEW_ROWS = 20
/** Rows with errors listed in the preview. */
const ERROR_ROWS = 200
/** Uploads and confirmations, each, per user in a minute. */
export const IMPORT_RATE_LIMIT_PER_MINUTE = 10

export const EXPORT_URL = '/accounts/export.csv'
export const IMPORT_URL = '/accounts/import'

/** CSV export (every role, its visible accounts) and import (Administrator). */
const routes: FastifyPluginAsync = async (app) => {
  // An import is heavy (a 5 MB file, 10,000 rows written): a few a minute per user (or address).
  await app.register(rateLimit, {
    global: false,
    keyGenerator: (request) => (request.auth ? `user:${request.auth.user.id}` : `ip:${request.ip}`),
    ...(app.dialect === 'postgres' ? { store: databaseRateLimitStore(app.db, { namespace: 'import' }) } : {}),
  })
  const importRateLimit = { max: IMPORT_RATE_LIMIT_PER_MINUTE, timeWindow: 60_000 }

  app.get(EXPORT_URL, { config: { access: 'user' } }, async (request, reply) => {
    // The Accounts page's query string: the export holds what the page's search and filters show.
    const q = listQuerySchema.parse(request.query ?? {})
    const { sort: _sort, dir: _dir, ...query } = toAccountQuery(q)
    // The search and filters, so that the log says which accounts left the portal.
    const searched = Object.fromEntries(Object.entries({ q: q.q, app: q.app, region: q.region, expires: q.expires }).filter((e): e is [string, string] => Boolean(e[1])))
    const batches = await exportAccounts(app, actorOf(request), query, searched)
    return reply
      .header('Content-Type', 'text/csv; charset=utf-8')
      .header('Content-Disposition', `attachment; filename="${exportFilename()}"`)
      .header('Cache-Control', 'no-store')
      .send(accountsCsvStream(batches))
  })

  app.get(`${IMPORT_URL}/template.csv`, { config: { access: 'administrator' } }, async (_request, reply) =>
    reply.header('Content-Type', 'text/csv; charset=utf-8').header('Content-Disposition', 'attachment; filename="accounts-import-template.csv"').send(await templateCsv()),
  )

  function renderImport(request: FastifyRequest, reply: FastifyReply, extra: Record<string, unknown> = {}, status?: number) {
    return reply.render(
      'accounts/import',
      {
        title: 'Import Accounts',
        columns: IMPORT_COLUMNS,
        exportOnly: CSV_COLUMNS.filter((c) => !c.importable),
        maxRows: MAX_IMPORT_ROWS,
        maxMb: MAX_IMPORT_BYTES / 1024 / 1024,
        appLabel,
        ...extra,
      },
      { fragment: 'accounts/_import', status },
    )
  }

  app.get(IMPORT_URL, { config: { access: 'administrator' } }, async (request, reply) => renderImport(request, reply))

  // Upload: parse and validate every row, write nothing, show the preview.
  app.post(IMPORT_URL, {
    config: {
      access: 'administrator',
      rateLimit: importRateLimit,
      // One CSV of up to 5 MB; a larger one arrives truncated and is refused with a message.
      multipartOptions: { limits: { fileSize: MAX_IMPORT_BYTES, files: 1 }, throwFileSizeLimit: false } as never,
    },
    // Room for a file somewhat over the limit, so that it gets the message rather than a 413.
    bodyLimit: 3 * MAX_IMPORT_BYTES,
  }, async (request, reply) => {
    const { file } = uploadForm.parse(request.body)
    if (!file) {
      return renderImport(request, reply, { alert: 'Choose a CSV file to import.' }, 422)
    }
    const buffer = await file.toBuffer()
    const preview: ImportPreview = file.file.truncated
      ? { rows: [], errors: [], total: 0, ignoredColumns: [], fileError: `The file is larger than ${MAX_IMPORT_BYTES / 1024 / 1024} MB. Split it into files of at most ${MAX_IMPORT_ROWS.toLocaleString('en-US')} rows.` }
      : await readImport(buffer)
    const ok = !preview.fileError && preview.errors.length === 0
    const signed = ok ? signImport(app.keys.session, actorOf(request).user.id, preview.rows) : null
    return renderImport(
      request,
      reply,
      {
        preview: {
          filename: file.filename,
          total: preview.total,
          valid: preview.rows.length,
          invalid: preview.errors.length,
          errors: preview.errors.slice(0, ERROR_ROWS),
          moreErrors: Math.max(0, preview.errors.length - ERROR_ROWS),
          sample: preview.rows.slice(0, PREVIEW_ROWS),
          ignoredColumns: preview.ignoredColumns,
          fileError: preview.fileError,
        },
        signed,
      },
      ok ? 200 : 422,
    )
  })

  // Confirmation: the preview's signed rows, written all-or-nothing.
  app.post(`${IMPORT_URL}/confirm`, {
    config: { access: 'administrator', rateLimit: importRateLimit },
    // The signed rows of a 10,000-row file (deflated) fit well within this.
    bodyLimit: 32 * 1024 * 1024,
  }, async (request, reply) => {
    const verified = verifyImport(app.keys.session, actorOf(request).user.id, confirmImportForm.parse(request.body))
    if (!verified.ok) return renderImport(request, reply, { alert: verified.reason }, 400)
    let n: number
    try {
      n = await importAccounts(app, actorOf(request), verified.rows, verified.id, verified.issuedAt)
    } catch (err) {
      if (err instanceof ConflictError) return renderImport(request, reply, { alert: err.message }, 409)
      throw err
    }
    await flash(request, `Imported ${n.toLocaleString('en-US')} ${n === 1 ? 'account' : 'accounts'}`)
    return redirect(request, reply, '/accounts')
  })

}

export default routes
