import { deepStrictEqual, rejects } from "node:assert/strict";
import { z } from "zod";
import { RpcError } from "../protocol/envelope.ts";
import { Logger } from "../util/log.ts";
import { call } from "./client.ts";
import { handler, serveConnection } from "./server.ts";

async function withServer(
  fn: (socket: string, logs: string[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const socket = `${dir}/s.sock`;
  const logs: string[] = [];
  const log = new Logger((line) => logs.push(line), "debug");
  const handlers = {
    echo: handler(z.strictObject({ text: z.string() }), async (p, ctx) => {
      ctx.progress("thinking", "about it");
      await Promise.resolve();
      return { text: p.text.toUpperCase() };
    }),
    fail: handler(
      z.unknown(),
      () => Promise.reject(new RpcError("not_found", "Cannot find " + '"x"')),
    ),
    crash: handler(
      z.unknown(),
      () => Promise.reject(new Error("disk on fire")),
    ),
  };
  const listener = Deno.listen({ transport: "unix", path: socket });
  const serving = (async () => {
    for await (const conn of listener) {
      await serveConnection(conn, handlers, log);
    }
  })().catch(() => {});
  try {
    await fn(socket, logs);
  } finally {
    listener.close();
    await serving;
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("call() gets progress then the validated result", async () => {
  await withServer(async (socket) => {
    const stages: string[] = [];
    const result = await call(
      socket,
      "echo",
      { text: "hi" },
      z.object({ text: z.string() }),
      {
        onProgress: (p) => stages.push(`${p.stage}:${p.detail}`),
      },
    );
    deepStrictEqual(result, { text: "HI" });
    deepStrictEqual(stages, ["thinking:about it"]);
  });
});

Deno.test("errors carry their code and an op id that is in the server log", async () => {
  await withServer(async (socket, logs) => {
    const isCode = (code: string) => (e: unknown) =>
      e instanceof RpcError && e.code === code;
    await rejects(call(socket, "fail", {}, z.unknown()), isCode("not_found"));
    await rejects(
      call(socket, "nope", {}, z.unknown()),
      isCode("unknown_method"),
    );
    await rejects(
      call(socket, "echo", { text: 5 }, z.unknown()),
      isCode("bad_request"),
    );
    await rejects(
      call(socket, "echo", { text: "x", extra: 1 }, z.unknown()),
      isCode("bad_request"),
    );
    const error: RpcError = await call(socket, "crash", {}, z.unknown())
      .then(() => Promise.reject(new Error("crash succeeded")), (e) => e);
    deepStrictEqual(error.code, "operation_failed");
    deepStrictEqual(error.message, "disk on fire");
    const logged = logs.map((l) => JSON.parse(l)).find((l) =>
      l.op === error.op && l.msg === "failed"
    );
    deepStrictEqual(logged?.error, "disk on fire");
  });
});

Deno.test("a request with another protocol version gets bad_version", async () => {
  await withServer(async (socket) => {
    const conn = await Deno.connect({ transport: "unix", path: socket });
    await conn.write(
      new TextEncoder().encode(
        JSON.stringify({
          v: 99,
          id: "1",
          method: "echo",
          params: { text: "x" },
        }) + "\n",
      ),
    );
    const reply = JSON.parse(
      new TextDecoder().decode(await new Response(conn.readable).bytes()),
    );
    deepStrictEqual(reply.kind, "error");
    deepStrictEqual(reply.error.code, "bad_version");
  });
});

Deno.test("invalid parameters are named with the value sent; an answer of the wrong shape is a version mismatch", async () => {
  await withServer(async (socket) => {
    const sent: RpcError = await call(socket, "echo", { text: 5 }, z.unknown())
      .then(() => Promise.reject(new Error("accepted")), (e) => e);
    deepStrictEqual(sent.code, "bad_request");
    deepStrictEqual(
      /Invalid parameters for "echo": text: .*\(got 5\)/.test(sent.message),
      true,
      sent.message,
    );
    const answer: RpcError = await call(
      socket,
      "echo",
      { text: "x" },
      z.strictObject({ count: z.number() }),
    ).then(() => Promise.reject(new Error("accepted")), (e) => e);
    deepStrictEqual(answer.code, "bad_version");
    deepStrictEqual(
      answer.message.includes('Cannot read the answer to "echo"') &&
        answer.message.includes("another version of banger"),
      true,
      answer.message,
    );
  });
});
