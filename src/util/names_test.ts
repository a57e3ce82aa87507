import { deepStrictEqual, match, throws } from "node:assert/strict";
import { generateVmName, validateVmName } from "./names.ts";

Deno.test("validateVmName() accepts DNS labels", () => {
  for (const name of ["a", "calm-otter", "vm1", "x".repeat(63), "0-0"]) {
    deepStrictEqual(validateVmName(name), name);
  }
});

Deno.test("validateVmName() refuses what is not a DNS label, saying why", () => {
  const cases: [string, string][] = [
    ["", "must not be empty"],
    ["Calm", "must be lower case"],
    ["-calm", "must not start or end with -"],
    ["calm-", "must not start or end with -"],
    ["calm_otter", "a-z, 0-9 and -"],
    ["calm.otter", "a-z, 0-9 and -"],
    ["x".repeat(64), "at most 63"],
    ["a b", "a-z, 0-9 and -"],
  ];
  for (const [name, why] of cases) {
    throws(() => validateVmName(name), (e: Error) => {
      match(e.message, new RegExp(`^Invalid VM name "`));
      return e.message.includes(why);
    });
  }
});

Deno.test("generateVmName() makes adjective-noun labels that avoid taken names", () => {
  const name = generateVmName(new Set());
  match(name, /^[a-z]+-[a-z]+$/);
  deepStrictEqual(validateVmName(name), name);
  // A random source that always picks the first words forces a suffix.
  const first = generateVmName(new Set(), () => 0);
  deepStrictEqual(generateVmName(new Set([first]), () => 0), `${first}-2`);
});
