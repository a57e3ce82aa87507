/**
 * Server side of the request/response protocol: validates each request with
 * zod, dispatches it to a typed handler and turns failures into coded
 * errors with an operation id that also appears in the server's log.
 *
 * @module
 */
import type { z } from "zod";
import type { Logger } from "../util/log.ts";
import {
  newOpId,
  PROTOCOL_VERSION,
  RequestSchema,
  RpcError,
} from "../protocol/envelope.ts";
import { encodeLine, LineReader } from "./lines.ts";
import { describeIssues } from "./issues.ts";

/** What a handler gets besides its parameters. */
export interface HandlerContext {
  op: string;
  log: Logger;
  /** Sends a progress message to the caller (best effort). */
  progress(stage: string, detail?: string): void;
  /** Aborted when the caller goes away. */
  signal: AbortSignal;
}

/** A method: its parameter schema and what it does. */
export interface Handler<P extends z.ZodType = z.ZodType> {
  params: P;
  handle(params: z.infer<P>, ctx: HandlerContext): Promise<unknown>;
}

/** Builds a handler with its parameter type inferred from the schema. */
export function handler<P extends z.ZodType>(
  params: P,
  handle: (params: z.infer<P>, ctx: HandlerContext) => Promise<unknown>,
): Handler<P> {
  return { params, handle };
}

/** A connected peer, abstracted so the FFI socket of the helper fits too. */
export interface Connection {
  read(buffer: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  close(): void;
}

/**
 * Reads one request from `conn`, runs it and writes the answer.
 *
 * Never throws: every failure becomes an error message to the peer and a
 * log line.
 */
export async function serveConnection(
  conn: Connection,
  handlers: Record<string, Handler>,
  log: Logger,
): Promise<void> {
  const op = newOpId();
  const abort = new AbortController();
  let id = "?";
  let open = true;
  const send = async (message: unknown) => {
    if (!open) return;
    const data = encodeLine(message);
    let offset = 0;
    try {
      while (offset < data.byteLength) {
        offset += await conn.write(data.subarray(offset));
      }
    } catch {
      open = false;
      abort.abort();
    }
  };
  const started = performance.now();
  try {
    const line = await new LineReader(conn).next();
    if (line === null) return;
    const request = RequestSchema.safeParse(safeJson(line));
    if (!request.success) {
      throw new RpcError(
        "bad_request",
        "Cannot read request: malformed message",
      );
    }
    id = request.data.id;
    if (request.data.v !== PROTOCOL_VERSION) {
      throw new RpcError(
        "bad_version",
        `Cannot serve request: protocol version ${request.data.v} does not match ${PROTOCOL_VERSION}; restart the daemon after an upgrade`,
      );
    }
    const method = request.data.method;
    const h = Object.hasOwn(handlers, method) ? handlers[method] : undefined;
    if (!h) {
      throw new RpcError("unknown_method", `Unknown method "${method}"`);
    }
    const params = h.params.safeParse(request.data.params);
    if (!params.success) {
      throw new RpcError(
        "bad_request",
        `Invalid parameters for "${method}": ${
          describeIssues(params.error, request.data.params)
        }`,
      );
    }
    log.info("request", { op, method });
    const result = await h.handle(params.data, {
      op,
      log: log.with({ op }),
      progress: (stage, detail) => {
        void send({
          kind: "progress",
          id,
          stage,
          ...(detail === undefined ? {} : { detail }),
          elapsedMs: Math.round(performance.now() - started),
        });
      },
      signal: abort.signal,
    });
    log.info("done", {
      op,
      method,
      ms: Math.round(performance.now() - started),
    });
    await send({ kind: "result", id, result: result ?? null });
  } catch (error) {
    const rpc = error instanceof RpcError ? error : new RpcError(
      "operation_failed",
      error instanceof Error ? error.message : String(error),
    );
    log.warn("failed", {
      op,
      code: rpc.code,
      error: rpc.message,
      ...(error instanceof Error && !(error instanceof RpcError)
        ? { stack: error.stack }
        : {}),
    });
    await send({
      kind: "error",
      id,
      error: { code: rpc.code, message: rpc.message, op },
    });
  } finally {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}
