/**
 * The wire format shared by CLI → daemon and daemon → helper: one JSON object
 * per line over a unix socket, one request per connection. A request may be
 * answered by any number of progress messages and then exactly one result
 * or error.
 *
 * @module
 */
import { z } from "zod";

/** Bumped when a message changes incompatibly; mismatches get `bad_version`. */
export const PROTOCOL_VERSION = 1;

/** Error codes a caller can act on. */
export const ErrorCodeSchema = z.enum([
  "not_found",
  "already_exists",
  "bad_request",
  "operation_failed",
  "unauthorized",
  "unknown_method",
  "bad_version",
]);
export type ErrorCode = z.infer<typeof ErrorCodeSchema>;

/** Longest line either side accepts (requests are small; results bounded). */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;

export const RequestSchema = z.strictObject({
  v: z.number().int(),
  id: z.string().min(1).max(64),
  method: z.string().min(1).max(64),
  params: z.unknown(),
});
export type Request = z.infer<typeof RequestSchema>;

export const RpcErrorBodySchema = z.strictObject({
  code: ErrorCodeSchema,
  message: z.string(),
  op: z.string(),
});

export const ResponseSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("progress"),
    id: z.string(),
    stage: z.string(),
    detail: z.string().optional(),
    elapsedMs: z.number().optional(),
  }),
  z.strictObject({
    kind: z.literal("result"),
    id: z.string(),
    result: z.unknown(),
  }),
  z.strictObject({
    kind: z.literal("error"),
    id: z.string(),
    error: RpcErrorBodySchema,
  }),
]);
export type Response = z.infer<typeof ResponseSchema>;
export type Progress = Extract<Response, { kind: "progress" }>;

/**
 * An error that crosses the socket: a code for programs, a message for
 * people, and the operation id that finds it in the server's log.
 */
export class RpcError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly op = "",
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "RpcError";
  }
}

/** Makes a short random operation id, e.g. `op-3f9a1c2b`. */
export function newOpId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `op-${
    [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")
  }`;
}
