import assert from "node:assert/strict";
import { joinFailures, runAll } from "./cleanup.ts";

Deno.test("runAll() runs every step even after one fails", async () => {
  const ran: string[] = [];
  const failures = await runAll([
    { what: "stop the VMM", run: () => Promise.resolve(ran.push("vmm")) },
    {
      what: 'delete tap "bgtap2"',
      run: () => {
        ran.push("tap");
        return Promise.reject(new Error("device busy"));
      },
    },
    {
      what: "remove the directory",
      run: () => Promise.resolve(ran.push("dir")),
    },
    {
      what: "forget the host key",
      run: () => {
        ran.push("key");
        throw new Error("read-only file system");
      },
    },
  ]);
  assert.deepEqual(ran, ["vmm", "tap", "dir", "key"]);
  assert.deepEqual(failures, [
    'delete tap "bgtap2": device busy',
    "forget the host key: read-only file system",
  ]);
});

Deno.test("runAll() returns no failures when every step passes", async () => {
  assert.deepEqual(
    await runAll([{ what: "a", run: () => Promise.resolve() }]),
    [],
  );
});

Deno.test("joinFailures() names the action, then every failure", () => {
  const error = joinFailures('Cannot stop VM "calm-otter"', [
    "stop the VMM: still alive",
    'delete tap "bgtap2": busy',
  ]);
  assert.equal(
    error.message,
    'Cannot stop VM "calm-otter": stop the VMM: still alive; delete tap "bgtap2": busy',
  );
});
