/**
 * A minimal QMP (QEMU Machine Protocol) client over a unix socket.
 *
 * @module
 */
import { LineReader } from "../rpc/lines.ts";

/**
 * Runs one QMP command and returns its `return` value.
 *
 * Requires read/write permission for `socket`. Throws with QEMU's error
 * description when the command fails.
 */
export async function qmp(
  socket: string,
  command: string,
  args?: Record<string, unknown>,
): Promise<unknown> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    const reader = new LineReader(conn);
    const encoder = new TextEncoder();
    const next = async (): Promise<Record<string, unknown>> => {
      while (true) {
        const line = await reader.next();
        if (line === null) throw new Error(`QMP socket "${socket}" closed`);
        const message = JSON.parse(line) as Record<string, unknown>;
        // Asynchronous events interleave with replies; skip them.
        if (!("event" in message)) return message;
      }
    };
    await next(); // greeting
    await conn.write(
      encoder.encode(JSON.stringify({ execute: "qmp_capabilities" }) + "\n"),
    );
    await next();
    await conn.write(
      encoder.encode(
        JSON.stringify({
          execute: command,
          ...(args ? { arguments: args } : {}),
        }) + "\n",
      ),
    );
    const reply = await next();
    if ("error" in reply) {
      const error = reply.error as { desc?: string };
      throw new Error(
        `QMP "${command}" failed: ${error.desc ?? "unknown error"}`,
      );
    }
    return reply.return;
  } finally {
    conn.close();
  }
}
