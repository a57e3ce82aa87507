import assert from "node:assert/strict";
import { type StaleCandidate, StaleStopper } from "./stale.ts";

function setup(afterSeconds: number, vms: StaleCandidate[]) {
  let now = 1_000_000;
  const stopped: string[] = [];
  const pending: (() => void)[] = [];
  const stopper = new StaleStopper({
    afterSeconds,
    running: () => vms,
    now: () => now,
    stop: (id, limitMs) => {
      assert.equal(limitMs, Math.max(afterSeconds, 15) * 1000);
      stopped.push(id);
      return new Promise<void>((resolve) => pending.push(resolve));
    },
  });
  return {
    stopper,
    stopped,
    advance: (ms: number) => (now += ms),
    now: () => now,
    finish: async () => {
      for (const resolve of pending.splice(0)) resolve();
      await new Promise((r) => setTimeout(r, 0));
    },
  };
}

Deno.test("StaleStopper stops only VMs idle for longer than the limit", () => {
  const vms: StaleCandidate[] = [
    { id: "a", name: "idle-otter", lastActiveMs: 1_000_000 },
    { id: "b", name: "busy-otter", lastActiveMs: 1_000_000 },
  ];
  const t = setup(60, vms);
  t.advance(59_000);
  assert.deepEqual(t.stopper.tick(), []);
  t.advance(-59_000);
  t.advance(59_000);
  assert.deepEqual(t.stopper.tick(), []);
  vms[1]!.lastActiveMs = t.now();
  t.advance(2_000);
  assert.deepEqual(t.stopper.tick(), ["a"]);
  assert.deepEqual(t.stopped, ["a"]);
});

Deno.test("StaleStopper does not start a second stop while one runs", async () => {
  const t = setup(20, [{ id: "a", name: "slow", lastActiveMs: 1_000_000 }]);
  t.advance(20_000);
  assert.deepEqual(t.stopper.tick(), ["a"]);
  t.advance(5_000);
  assert.deepEqual(t.stopper.tick(), []);
  await t.finish();
  // Still listed as running (the stop failed to change it): try again.
  assert.deepEqual(t.stopper.tick(), ["a"]);
  assert.deepEqual(t.stopped, ["a", "a"]);
});

Deno.test("StaleStopper with 0 seconds never stops anything", () => {
  const t = setup(0, [{ id: "a", name: "x", lastActiveMs: 0 }]);
  t.advance(10 ** 9);
  assert.deepEqual(t.stopper.tick(), []);
  t.stopper.start();
  t.stopper.close();
});

Deno.test("StaleStopper checks a quarter of the limit, between 1 and 30 s", () => {
  const at = (s: number) =>
    new StaleStopper({
      afterSeconds: s,
      running: () => [],
      stop: () => Promise.resolve(),
    }).intervalMs;
  assert.equal(at(2), 3750); // limits below 15 s act as 15 s
  assert.equal(at(40), 10_000);
  assert.equal(at(3600), 30_000);
});

Deno.test("StaleStopper treats limits below three heartbeats as the minimum", () => {
  const t = setup(5, [{ id: "a", name: "short", lastActiveMs: 1_000_000 }]);
  t.advance(10_000);
  assert.deepEqual(t.stopper.tick(), [], "stopped between two heartbeats");
  t.advance(6_000);
  assert.deepEqual(t.stopper.tick(), ["a"]);
});
