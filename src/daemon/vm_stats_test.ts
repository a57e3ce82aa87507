import assert from "node:assert/strict";
import { parsePsUsage, vmmUsage } from "./vm_stats.ts";

Deno.test("parsePsUsage() reads %cpu, rss (KiB) and elapsed seconds", () => {
  assert.deepEqual(parsePsUsage(" 12.5 204800   61\n"), {
    cpuPercent: 12.5,
    rssMib: 200,
    uptimeSeconds: 61,
  });
  assert.equal(parsePsUsage(""), undefined);
  assert.equal(parsePsUsage("x y z"), undefined);
});

Deno.test("vmmUsage() measures a live process and nothing for a dead one", async () => {
  const child = new Deno.Command("sleep", { args: ["5"] }).spawn();
  try {
    const usage = await vmmUsage(child.pid);
    assert.ok(usage, "no usage for a live process");
    assert.ok(usage.rssMib > 0);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
  assert.equal(await vmmUsage(child.pid), undefined);
});
