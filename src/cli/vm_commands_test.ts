import assert from "node:assert/strict";
import { parseSignal, parseVcpu } from "./vm_commands.ts";

Deno.test("parseSignal() takes names with or without SIG, and numbers", () => {
  assert.equal(parseSignal("KILL"), "KILL");
  assert.equal(parseSignal("sigterm"), "TERM");
  assert.equal(parseSignal("9"), "KILL");
  assert.equal(parseSignal("15"), "TERM");
  assert.throws(
    () => parseSignal("STOP"),
    /Invalid --signal "STOP": must be one of/,
  );
});

Deno.test("parseVcpu() takes 1-64 only", () => {
  assert.equal(parseVcpu("2"), 2);
  for (const bad of ["0", "-1", "65", "1.5", "two"]) {
    assert.throws(() => parseVcpu(bad), /Invalid --vcpu/);
  }
});
