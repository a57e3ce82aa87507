/**
 * Client side of the request/response protocol over a unix socket.
 *
 * @module
 */
import type { z } from "zod";
import {
  type Progress,
  PROTOCOL_VERSION,
  ResponseSchema,
  RpcError,
} from "../protocol/envelope.ts";
import { encodeLine, LineReader } from "./lines.ts";
import { describeIssues } from "./issues.ts";

/** Options for {@linkcode call}. */
export interface CallOptions {
  onProgress?: (progress: Progress) => void;
  signal?: AbortSignal;
}

/**
 * Sends one request to the server listening on `socketPath` and returns its
 * result, validated with `resultSchema`.
 *
 * Requires `--allow-read` and `--allow-write` for `socketPath`. Throws
 * {@linkcode RpcError} with the server's code, or `Deno.errors.NotFound` /
 * `ConnectionRefused` when nothing listens.
 */
export async function call<T extends z.ZodType>(
  socketPath: string,
  method: string,
  params: unknown,
  resultSchema: T,
  options: CallOptions = {},
): Promise<z.infer<T>> {
  const conn = await Deno.connect({ transport: "unix", path: socketPath });
  const abort = () => conn.close();
  options.signal?.addEventListener("abort", abort, { once: true });
  try {
    const id = crypto.randomUUID();
    await writeAll(
      conn,
      encodeLine({ v: PROTOCOL_VERSION, id, method, params }),
    );
    const reader = new LineReader(conn);
    while (true) {
      const line = await reader.next();
      if (line === null) {
        throw new RpcError(
          "operation_failed",
          `Connection to "${socketPath}" closed before "${method}" answered`,
        );
      }
      const message = parseAnswer(
        ResponseSchema,
        JSON.parse(line),
        method,
        socketPath,
      );
      if (message.kind === "progress") {
        options.onProgress?.(message);
        continue;
      }
      if (message.kind === "error") {
        throw new RpcError(
          message.error.code,
          message.error.message,
          message.error.op,
        );
      }
      return parseAnswer(resultSchema, message.result, method, socketPath);
    }
  } finally {
    options.signal?.removeEventListener("abort", abort);
    try {
      conn.close();
    } catch {
      // Already closed by an abort.
    }
  }
}

/**
 * Checks an answer to `method` from `socketPath`; one that does not fit is
 * taken for a version mismatch between the two ends.
 */
function parseAnswer<S extends z.ZodType>(
  schema: S,
  value: unknown,
  method: string,
  socketPath: string,
): z.infer<S> {
  const checked = schema.safeParse(value);
  if (checked.success) return checked.data;
  throw new RpcError(
    "bad_version",
    `Cannot read the answer to "${method}" from "${socketPath}": ${
      describeIssues(checked.error, value)
    }; the server may run another version of banger (stop it with "banger daemon stop" and retry)`,
  );
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.byteLength) {
    offset += await conn.write(data.subarray(offset));
  }
}
