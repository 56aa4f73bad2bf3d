import type { FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { HttpError, ValidationError } from '../../lib/errors.ts'
import { MAX_LOGO_BYTES, MAX_LOGO_HEIGHT, MAX_LOGO_WIDTH } from '../../lib/png.ts'
import { errorSchema } from '../api/routes.ts'
import { actorOf } from '../../plugins/session.ts'
import * as repo from './repository.ts'
import { LOGO_UPLOAD_OPTIONS, readLogoForm, sendLogoImage } from './http.ts'
import * as service from './service.ts'

const logoSchema = z.object({
  uuid: z.string(),
  container_uuid: z.string(),
  name: z.string(),
  filename: z.string(),
})
const params = z.object({ uuid: z.string().max(100) })
const tags = ['logos']
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema }
const fileRule = `\`logo\`: a PNG file of at most ${MAX_LOGO_WIDTH} x ${MAX_LOGO_HEIGHT} pixels and ${MAX_LOGO_BYTES / 1024} KB (re-encoded before it is stored)`
// Multipart bodies are read and checked in the handlers (@fastify/multipart hands over
// `{ value }` fields and file objects that a zod schema cannot check); the body schemas
// below only document the form for OpenAPI, and `documentOnly` skips their validation.
const config = { access: 'administrator' as const, multipartOptions: LOGO_UPLOAD_OPTIONS }
const documentOnly = () => (data: unknown) => ({ value: data })
const pngFile = z.any().meta({ type: 'string', format: 'binary', description: fileRule.replace('`logo`: ', '') })
const createBody = z.object({ name: z.string().min(1).max(100), logo: pngFile })
const updateBody = z.object({ name: z.string().min(1).max(100).optional(), logo: pngFile.optional() })

function multipartForm(request: FastifyRequest) {
  if (!request.isMultipart()) throw new HttpError(400, 'Send multipart/form-data with the fields `name` and `logo` (the PNG file).')
  return readLogoForm(request.body)
}

/** Validation errors as the API's 400, saying what was wrong. */
async function asApi<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (err instanceof ValidationError) throw new HttpError(400, service.describeErrors(err))
    throw err
  }
}

/** `/mssp/logos` (Administrator): Tenable's MSSP logo endpoints. */
const routes: FastifyPluginAsyncZod = async (app) => {
  app.get('/mssp/logos', {
    config: { access: 'administrator' },
    schema: { tags, summary: 'List logos', response: { 200: z.object({ logos: z.array(logoSchema) }), ...errors } },
  }, async () => ({ logos: (await repo.listLogos(app.db)).map(service.toApiLogo) }))

  app.post('/mssp/logos', {
    config,
    validatorCompiler: documentOnly,
    schema: {
      body: createBody,
      tags,
      summary: 'Add a logo',
      description: `multipart/form-data with \`name\` (1-100 characters) and ${fileRule}. Returns the new logo's uuid.`,
      consumes: ['multipart/form-data'],
      response: { 200: z.object({ uuid: z.string() }), ...errors },
    },
  }, async (request) => {
    const form = multipartForm(request)
    const logo = await asApi(() => service.createLogo(app.db, actorOf(request), form))
    return { uuid: logo.uuid }
  })

  app.get('/mssp/logos/:uuid', {
    config: { access: 'administrator' },
    schema: { tags, summary: 'Logo details', params, response: { 200: logoSchema, ...errors } },
  }, async (request) => service.toApiLogo(await service.requireLogo(app.db, request.params.uuid)))

  app.patch('/mssp/logos/:uuid', {
    config,
    validatorCompiler: documentOnly,
    schema: {
      body: updateBody,
      tags,
      summary: 'Rename a logo and/or replace its file',
      description: `multipart/form-data with \`name\` and/or ${fileRule}. Returns the updated logo.`,
      consumes: ['multipart/form-data'],
      params,
      response: { 200: logoSchema, ...errors },
    },
  }, async (request) => {
    const logo = await service.requireLogo(app.db, request.params.uuid)
    const form = multipartForm(request)
    if (form.name === undefined && form.file === undefined) throw new HttpError(400, 'Send `name` and/or `logo` (the PNG file) to change.')
    return service.toApiLogo(await asApi(() => service.editLogo(app.db, actorOf(request), logo, form)))
  })

  app.delete('/mssp/logos/:uuid', {
    config: { access: 'administrator' },
    schema: { tags, summary: 'Delete a logo (also removes it from every account)', params, response: { 200: z.object({}), ...errors } },
  }, async (request) => {
    const logo = await service.requireLogo(app.db, request.params.uuid)
    await service.deleteLogo(app.db, actorOf(request), logo)
    return {}
  })

  app.get('/mssp/logos/:uuid/logo.png', {
    config: { access: 'administrator' },
    schema: { tags, summary: "The logo's PNG file (image/png)", params, response: errors },
  }, async (request, reply) => sendLogoImage(request, reply, request.params.uuid))

  app.get('/mssp/logos/:uuid/logo.base64', {
    config: { access: 'administrator' },
    schema: { tags, summary: "The logo's PNG file, base64-encoded (text/plain)", params, response: errors },
  }, async (request, reply) => {
    const logo = await service.requireLogo(app.db, request.params.uuid)
    const image = await repo.findLogoImage(app.db, request.auth!.user, logo.uuid)
    if (!image) throw new HttpError(404, 'This logo does not exist.')
    return reply.type('text/plain; charset=utf-8').header('Cache-Control', 'private, no-cache').header('X-Content-Type-Options', 'nosniff').send(Buffer.from(image.png).toString('base64') as never)
  })
}

export default routes
