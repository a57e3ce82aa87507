import { deepStrictEqual, throws } from "node:assert/strict";
import { formatMiB, parseSizeMiB } from "./size.ts";

Deno.test("parseSizeMiB() reads the units users write", () => {
  deepStrictEqual(parseSizeMiB("512", "--memory"), 512);
  deepStrictEqual(parseSizeMiB("512M", "--memory"), 512);
  deepStrictEqual(parseSizeMiB("512MiB", "--memory"), 512);
  deepStrictEqual(parseSizeMiB("4G", "--memory"), 4096);
  deepStrictEqual(parseSizeMiB("4GiB", "--memory"), 4096);
  deepStrictEqual(parseSizeMiB("1.5G", "--memory"), 1536);
  deepStrictEqual(parseSizeMiB("1T", "--disk-size"), 1024 * 1024);
});

Deno.test("parseSizeMiB() refuses zero, negatives, junk and fractions of a MiB", () => {
  for (const bad of ["0", "0G", "-5G", "abc", "4X", "", "0.3M", "1e3"]) {
    throws(
      () => parseSizeMiB(bad, "--disk-size"),
      (e: Error) => e.message.startsWith(`Invalid --disk-size "${bad}"`),
    );
  }
});

Deno.test("formatMiB() shows whole GiB as G and the rest as M", () => {
  deepStrictEqual(formatMiB(8192), "8G");
  deepStrictEqual(formatMiB(1536), "1536M");
  deepStrictEqual(formatMiB(512), "512M");
});
