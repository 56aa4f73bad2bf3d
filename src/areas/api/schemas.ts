import { z } from 'zod'

// What the API's route files share of their schemas.

export const errorSchema = z.object({ statusCode: z.number(), error: z.string(), message: z.string() }).passthrough()
export const keysSchema = z.object({ accessKey: z.string(), secretKey: z.string() })
