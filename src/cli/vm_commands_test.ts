import assert from "node:assert/strict";
import { RpcError } from "../protocol/envelope.ts";
import { parseSignal, parseVcpu, withKernelSource } from "./vm_commands.ts";

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

Deno.test("withKernelSource() names default_kernel only when the kernel came from config", async () => {
  const missing = () =>
    Promise.reject(
      new RpcError(
        "not_found",
        'Cannot find kernel "nokern": not imported',
        "op-1",
      ),
    );
  await assert.rejects(withKernelSource(missing(), true), {
    message:
      'Cannot find kernel "nokern": not imported; it is default_kernel in config.toml',
    op: "op-1",
  });
  await assert.rejects(withKernelSource(missing(), false), {
    message: 'Cannot find kernel "nokern": not imported',
  });
  assert.equal(await withKernelSource(Promise.resolve(7), true), 7);
});
