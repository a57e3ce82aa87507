import assert from "node:assert/strict";
import {
  formatMiB,
  parseDiskMiB,
  parseMemoryMiB,
  parseSizeMiB,
} from "./size.ts";

Deno.test("parseSizeMiB() reads M, G, MiB, GiB and bare MiB", () => {
  const cases: [string, number][] = [
    ["512M", 512],
    ["4G", 4096],
    ["4GiB", 4096],
    ["512MiB", 512],
    ["2048", 2048],
    ["1.5G", 1536],
    ["8g", 8192],
  ];
  for (const [text, mib] of cases) assert.equal(parseSizeMiB(text, "--x"), mib);
});

Deno.test("parseSizeMiB() refuses zero, negatives, fractions of MiB and junk", () => {
  const cases: [string, RegExp][] = [
    ["0", /must be positive/],
    ["0G", /must be positive/],
    ["-5G", /expected a size such as 512M, 4G or 4GiB/],
    ["0.3M", /must be a whole number of MiB/],
    ["4X", /expected a size/],
    ["", /expected a size/],
    ["G", /expected a size/],
  ];
  for (const [text, why] of cases) {
    assert.throws(
      () => parseSizeMiB(text, "--memory"),
      (e: Error) =>
        e.message.startsWith(`Invalid --memory "${text}": `) &&
        why.test(e.message),
    );
  }
});

Deno.test("formatMiB() shows whole GiB as G and the rest as M", () => {
  assert.equal(formatMiB(8192), "8G");
  assert.equal(formatMiB(1536), "1536M");
  assert.equal(formatMiB(512), "512M");
});

Deno.test("parseMemoryMiB() and parseDiskMiB() refuse sizes no VM here could have", () => {
  const hostMib = Math.floor(Deno.systemMemoryInfo().total / (1024 * 1024));
  assert.equal(parseMemoryMiB("512M"), 512);
  assert.throws(
    () => parseMemoryMiB(`${hostMib + 1}M`),
    new RegExp(`Invalid --memory "${hostMib + 1}M": at most`),
  );
  assert.throws(() => parseMemoryMiB("100T"), /this host's memory/);
  // Too little for the guest to boot: refused up front, not by QEMU.
  assert.throws(
    () => parseMemoryMiB("1"),
    /Invalid --memory "1": at least 256M \(what a Debian guest needs to boot\)/,
  );
  assert.equal(parseMemoryMiB("256M"), 256);
  assert.equal(parseDiskMiB("8G"), 8192);
  assert.throws(() => parseDiskMiB("17T"), /largest ext4 disk/);
});
