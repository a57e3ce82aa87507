import assert from "node:assert/strict";
import { RpcError } from "../protocol/envelope.ts";
import { runBatch } from "./batch.ts";

const ids: Record<string, string> = {
  alpha: "id-a",
  "id-a": "id-a",
  beta: "id-b",
  gamma: "id-c",
};
const resolve = (ref: string) => {
  const id = ids[ref];
  if (!id) {
    throw new RpcError("not_found", `Cannot find VM "${ref}": no such VM`);
  }
  return id;
};

Deno.test("runBatch() reports in the order given, unknown refs included", async () => {
  const results = await runBatch(
    ["gamma", "nope", "alpha"],
    resolve,
    () => Promise.resolve(),
  );
  assert.deepEqual(results, [
    { ref: "gamma", ok: true },
    {
      ref: "nope",
      ok: false,
      error: {
        code: "not_found",
        message: 'Cannot find VM "nope": no such VM',
      },
    },
    { ref: "alpha", ok: true },
  ]);
});

Deno.test("runBatch() runs each distinct VM once, however it is named", async () => {
  const calls: string[] = [];
  const results = await runBatch(
    ["alpha", "id-a", "alpha", "beta"],
    resolve,
    (id) => {
      calls.push(id);
      return Promise.resolve("done");
    },
  );
  assert.deepEqual(calls.sort(), ["id-a", "id-b"]);
  assert.equal(results.length, 4);
  assert.ok(results.every((r) => r.ok && r.detail === "done"));
});

Deno.test("runBatch() runs different VMs concurrently", async () => {
  let inFlight = 0;
  let most = 0;
  await runBatch(["alpha", "beta", "gamma"], resolve, async () => {
    most = Math.max(most, ++inFlight);
    await new Promise((r) => setTimeout(r, 20));
    inFlight--;
  });
  assert.equal(most, 3);
});

Deno.test("runBatch() lets valid targets proceed when one fails", async () => {
  const results = await runBatch(
    ["alpha", "beta"],
    resolve,
    (id) =>
      id === "id-a"
        ? Promise.reject(new Error('Cannot stop VM "alpha" cleanly: busy'))
        : Promise.resolve(),
  );
  assert.deepEqual(results[0], {
    ref: "alpha",
    ok: false,
    error: {
      code: "operation_failed",
      message: 'Cannot stop VM "alpha" cleanly: busy',
    },
  });
  assert.deepEqual(results[1], { ref: "beta", ok: true });
});
