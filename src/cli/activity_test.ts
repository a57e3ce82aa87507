import assert from "node:assert/strict";
import { withActivity } from "./activity.ts";

Deno.test("withActivity() reports at the start, while running and at the end", async () => {
  const calls: string[] = [];
  const daemon = {
    call: (method: string, params: unknown) => {
      calls.push(`${method} ${(params as { ref: string }).ref}`);
      return Promise.resolve(null);
    },
  };
  const result = await withActivity(daemon, "vm1", async () => {
    await new Promise((r) => setTimeout(r, 75));
    return 7;
  }, 20);
  assert.equal(result, 7);
  assert.ok(calls.length >= 4, `only ${calls.length} reports`);
  assert.ok(calls.every((c) => c === "vm.touch vm1"));
});

Deno.test("withActivity() does not fail the session when the daemon is gone", async () => {
  const daemon = { call: () => Promise.reject(new Error("no daemon")) };
  assert.equal(await withActivity(daemon, "vm1", () => Promise.resolve(3)), 3);
});
