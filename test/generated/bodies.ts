import { randomUUID } from 'node:crypto'
import { PASSWORD } from '../helper.ts'
import { DOMAIN, tinyPng } from './actors.ts'

// Request bodies built from the OpenAPI document's JSON schemas (and, for page forms, which
// have no schema, a plain form): a valid-looking one for the matrix, wrong ones for the fuzz.

export interface JsonSchema {
  type?: string | string[]
  properties?: Record<string, JsonSchema>
  required?: string[]
  items?: JsonSchema
  enum?: unknown[]
  const?: unknown
  anyOf?: JsonSchema[]
  oneOf?: JsonSchema[]
  format?: string
  minLength?: number
  maxLength?: number
  minimum?: number
  maximum?: number
  nullable?: boolean
  default?: unknown
}

export interface OpenApiOperation {
  parameters?: Array<{ name: string; in: string; required?: boolean; schema?: JsonSchema }>
  requestBody?: { content: Record<string, { schema: JsonSchema }> }
}
export type OpenApiDocument = { paths: Record<string, Record<string, OpenApiOperation>> }

/** Uuids of seeded objects, for fields that name one. */
export interface Refs {
  account: string
  logo: string
  user: string
}

let counter = 0
/** A value the schema accepts; field names pick real objects and plausible text. */
export function validValue(schema: JsonSchema | undefined, name: string, refs: Refs): unknown {
  if (!schema) return 'matrix'
  if (schema.const !== undefined) return schema.const
  if (schema.enum?.length) return schema.enum[0]
  const alt = schema.anyOf ?? schema.oneOf
  if (alt?.length) return validValue(alt[0], name, refs)
  const type = Array.isArray(schema.type) ? schema.type.find((x) => x !== 'null') : schema.type
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {}
      const props = schema.properties ?? {}
      const required = new Set(schema.required ?? [])
      for (const [key, sub] of Object.entries(props)) {
        if (key === '_csrf') continue
        if (required.has(key) || required.size === 0) out[key] = validValue(sub, key, refs)
      }
      return out
    }
    case 'array':
      return [validValue(schema.items, name, refs)]
    case 'integer':
    case 'number':
      return Math.min(Math.max(1, schema.minimum ?? 1), schema.maximum ?? 1)
    case 'boolean':
      return name === 'enabled'
    case 'string':
    default:
      return stringFor(schema, name, refs)
  }
}

function stringFor(schema: JsonSchema, name: string, refs: Refs): string {
  counter += 1
  if (schema.format === 'uuid' || /uuid/.test(name)) {
    if (/account/.test(name)) return refs.account
    if (/logo/.test(name)) return refs.logo
    return refs.user
  }
  if (name === 'current_password') return PASSWORD
  if (/password/.test(name)) return `Fresh-Horse-${counter}-Battery!`
  if (name === 'username') return `new-${counter}-${Date.now()}@${DOMAIN}`
  if (/email/.test(name)) return `mail-${counter}@${DOMAIN}`
  if (/phone/.test(name)) return '+15555550123'
  if (/domain/.test(name)) return 'example.com'
  if (/url/.test(name)) return 'https://instance.example.com'
  if (/code/.test(name)) return '123456'
  const text = `Matrix ${name} ${counter}`
  return text.slice(0, schema.maxLength ?? text.length).padEnd(schema.minLength ?? 0, 'x')
}

/** A multipart/form-data body: fields and at most one file. */
export function multipartBody(fields: Record<string, string>, file?: { field: string; filename: string; type: string; data: Buffer }) {
  const boundary = `----matrix${randomUUID().replace(/-/g, '')}`
  const parts: Buffer[] = []
  for (const [k, v] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`))
  }
  if (file) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${file.field}"; filename="${file.filename}"\r\nContent-Type: ${file.type}\r\n\r\n`))
    parts.push(file.data, Buffer.from('\r\n'))
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`))
  return { payload: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` }
}

/** The file a multipart route reads: a CSV for the import, a PNG logo otherwise. */
export function uploadFor(url: string) {
  return url.includes('import')
    ? { field: 'file', filename: 'accounts.csv', type: 'text/csv', data: Buffer.from('container_name,region\nMatrix Import,US\n') }
    : { field: 'logo', filename: 'logo.png', type: 'image/png', data: tinyPng() }
}

/** The OpenAPI operation of a route (the document lists `/api` paths; copies share them). */
export function operationFor(doc: OpenApiDocument, path: string, method: string): OpenApiOperation | undefined {
  return doc.paths[path]?.[method.toLowerCase()]
}

/** The JSON body schema of an operation, if it takes JSON. */
export function jsonBodySchema(op: OpenApiOperation | undefined): JsonSchema | undefined {
  return op?.requestBody?.content['application/json']?.schema
}

/** Required query parameters, filled with valid values (e.g. DELETE /users/{id}'s successor). */
export function requiredQuery(op: OpenApiOperation | undefined, refs: Refs): string {
  const params = (op?.parameters ?? []).filter((p) => p.in === 'query' && p.required)
  const q = new URLSearchParams()
  for (const p of params) q.set(p.name, String(validValue(p.schema ?? { type: 'string' }, p.name, refs)))
  const s = q.toString()
  return s ? `?${s}` : ''
}
