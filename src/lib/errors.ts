// Errors that routes and services throw; the error plugin turns each into a page or JSON.
import type { ZodError } from 'zod'

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message)
  }
}

export class NotFoundError extends HttpError {
  constructor(message = 'The page or object you asked for does not exist.') {
    super(404, message)
  }
}

export class ForbiddenError extends HttpError {
  constructor(message = 'Your role does not allow this.') {
    super(403, message)
  }
}

export class UnauthorizedError extends HttpError {
  constructor(message = 'Sign in to continue.') {
    super(401, message)
  }
}

export class CsrfError extends HttpError {
  constructor() {
    super(403, 'This form has expired. Go back, reload the page and try again.')
  }
}

export class ConflictError extends HttpError {
  constructor(message: string) {
    super(409, message)
  }
}

/** Invalid input: pages re-render their form with these messages (422). */
export class ValidationError extends HttpError {
  constructor(
    readonly fieldErrors: Record<string, string>,
    message = 'Please correct the highlighted fields.',
  ) {
    super(422, message)
  }
}

/** A zod error as ValidationError's messages: the first per field ('form' for the whole input). */
export function fieldErrors(error: ZodError): Record<string, string> {
  const out: Record<string, string> = {}
  for (const issue of error.issues) out[String(issue.path[0] ?? 'form')] ??= issue.message
  return out
}

/** The session passed the password but still owes its second factor. */
export class SecondFactorRequiredError extends HttpError {
  constructor() {
    super(401, 'Enter your verification code to finish signing in.')
  }
}

/** The require-2FA setting is on and this user has no second factor yet. */
export class TwoFactorSetupRequiredError extends HttpError {
  constructor() {
    super(403, 'Set up two-factor authentication to continue: the portal requires it.')
  }
}

/**
 * The portal cannot do this right now through no fault of the request (the database is
 * locked for too long, the disk is full or read-only): 503 with Retry-After. Nothing the
 * request asked for was saved.
 */
export class ServiceUnavailableError extends HttpError {
  constructor(
    message = 'The portal cannot save changes right now. Please try again in a few minutes.',
    readonly retryAfterSeconds = 60,
    options?: { cause?: unknown },
  ) {
    super(503, message)
    if (options && 'cause' in options) this.cause = options.cause
  }
}
