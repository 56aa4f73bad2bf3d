import type { FastifyReply } from 'fastify'
import { HttpError, ValidationError } from '../../lib/errors.ts'
import { StepUpLockedError } from '../my-account/step-up.ts'

/**
 * The API's answer to a refused change: 429 with Retry-After while locked, 400 with the
 * message for any other invalid input (a missing or wrong current password included).
 */
export function apiError(reply: FastifyReply) {
  return (err: unknown): never => {
    if (err instanceof StepUpLockedError) {
      reply.header('Retry-After', String(err.retryAfterSeconds))
      throw new HttpError(429, err.message)
    }
    if (err instanceof ValidationError) throw new HttpError(400, Object.values(err.fieldErrors)[0] ?? err.message)
    throw err
  }
}
