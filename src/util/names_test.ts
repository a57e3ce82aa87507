import assert from "node:assert/strict";
import { generateVmName, validateVmName } from "./names.ts";

Deno.test("validateVmName() accepts DNS labels", () => {
  for (const name of ["a", "calm-otter", "vm1", "x".repeat(63), "1-2"]) {
    assert.equal(validateVmName(name), name);
  }
});

Deno.test("validateVmName() refuses what is not a DNS label, saying why", () => {
  const cases: [string, RegExp][] = [
    ["", /must not be empty/],
    ["x".repeat(64), /is 64 characters, at most 63/],
    ["Calm", /must be lower case/],
    ["-calm", /must not start or end with -/],
    ["calm-", /must not start or end with -/],
    ["calm_otter", /must be 1-63 characters of a-z, 0-9 and -/],
    ["calm.otter", /must be 1-63 characters/],
  ];
  for (const [name, why] of cases) {
    assert.throws(
      () => validateVmName(name),
      (e: Error) =>
        e.message.startsWith(`Invalid VM name "${name}": `) &&
        why.test(e.message),
    );
  }
});

Deno.test("generateVmName() makes an adjective-noun label", () => {
  for (let i = 0; i < 50; i++) {
    const name = generateVmName(new Set());
    assert.match(name, /^[a-z]+-[a-z]+$/);
    assert.equal(validateVmName(name), name);
  }
});

Deno.test("generateVmName() avoids taken names", () => {
  // A random source that always picks the first words.
  const first = () => 0;
  const taken = new Set([generateVmName(new Set(), first)]);
  const next = generateVmName(taken, first);
  assert.ok(!taken.has(next));
  assert.match(next, /^[a-z]+-[a-z]+-2$/);
});
