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
      const message = ResponseSchema.parse(JSON.parse(line));
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
      return resultSchema.parse(message.result);
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

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.byteLength) {
    offset += await conn.write(data.subarray(offset));
  }
}
